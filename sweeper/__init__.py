"""sweeper: find revoked or suspect certificates across a fleet, and replace them all."""

__version__ = "0.1.0"
