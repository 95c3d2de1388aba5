"""Rotation: plan -> phases (trust, reissue, purge) -> journal -> verify; resume and rollback."""
