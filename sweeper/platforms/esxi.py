"""ESXi hosts: the host certificate and key, the CA store, and what makes a change stick and take effect."""

from __future__ import annotations

from sweeper.model import Role, StoreKind, StoreSpec

RUI_CRT = "/etc/vmware/ssl/rui.crt"
RUI_KEY = "/etc/vmware/ssl/rui.key"
CASTORE = "/etc/vmware/ssl/castore.pem"
AUTO_BACKUP = "/bin/auto-backup.sh"

DEFAULT_STORES = (
    StoreSpec(kind=StoreKind.PEM, role=Role.LEAF, cert=RUI_CRT, key=RUI_KEY),
    StoreSpec(kind=StoreKind.BUNDLE, role=Role.TRUST, path=CASTORE),
)
RSA_ONLY = False
RESTART = "{root}/etc/init.d/hostd restart && {root}/etc/init.d/vpxa restart"
PERSIST = f"{{root}}{AUTO_BACKUP}"
"""ESXi keeps /etc in RAM: without auto-backup.sh a changed certificate is gone at the next boot."""
