"""The rotation's steps: one frozen class per kind, stored in the journal as a tagged union.

Trust (`AddAnchor`, `VmdirPublish`), reissue (`ReissueFile`, `ReissueVecs`, `Persist`,
`Restart`, `VerifyTls`) and purge (`RemoveAnchors`, `VmdirUnpublish`, `ClearVecsStore`,
`RemoveCrls`, `DeleteVecsCrls`, `PublishCrl`); a vCenter's own in `vcsa` and `vcdb`. Each says
what it does (`describe`), what the preflight must back up before it (`backups`), the scripts
it runs (`scripts`, for `rotate --dry-run --show-scripts`), and carries itself out (`apply`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from sweeper.rotate.steps.base import (
    BackupKind,
    BackupTarget,
    FileBackup,
    KnownBackup,
    Phase,
    ScriptContext,
    Step,
    StepContext,
    VecsBackup,
)
from sweeper.rotate.steps.purge import (
    ClearVecsStore,
    DeleteVecsCrls,
    PublishCrl,
    RemoveAnchors,
    RemoveCrls,
    VmdirUnpublish,
    serials_to_revoke,
)
from sweeper.rotate.steps.reissue import (
    OldCertificate,
    Persist,
    Reissue,
    ReissueFile,
    ReissueVecs,
    Restart,
    VerifyTls,
)
from sweeper.rotate.steps.trust import AddAnchor, VmdirPublish
from sweeper.rotate.steps.vcdb import UpdateVpxExt
from sweeper.rotate.steps.vcsa import (
    CopyMachineSsl,
    DeleteVecsEntries,
    RecertifyVecs,
    RegenerateSms,
    RekeyDataEncipherment,
)

AnyStep = Annotated[
    AddAnchor
    | VmdirPublish
    | ReissueFile
    | ReissueVecs
    | Persist
    | Restart
    | VerifyTls
    | RemoveAnchors
    | VmdirUnpublish
    | ClearVecsStore
    | RemoveCrls
    | DeleteVecsCrls
    | PublishCrl
    | RecertifyVecs
    | RekeyDataEncipherment
    | CopyMachineSsl
    | RegenerateSms
    | DeleteVecsEntries
    | UpdateVpxExt,
    Field(discriminator="kind"),
]
STEPS = TypeAdapter(tuple[AnyStep, ...])
"""Steps to and from JSON (the journal's plan); an unknown kind or a wrong field is a ValidationError."""

__all__ = [
    "STEPS",
    "AddAnchor",
    "AnyStep",
    "BackupKind",
    "BackupTarget",
    "ClearVecsStore",
    "CopyMachineSsl",
    "DeleteVecsEntries",
    "DeleteVecsCrls",
    "FileBackup",
    "KnownBackup",
    "OldCertificate",
    "Persist",
    "Phase",
    "PublishCrl",
    "RecertifyVecs",
    "RegenerateSms",
    "Reissue",
    "RekeyDataEncipherment",
    "ScriptContext",
    "ReissueFile",
    "ReissueVecs",
    "RemoveAnchors",
    "RemoveCrls",
    "Restart",
    "Step",
    "StepContext",
    "UpdateVpxExt",
    "VecsBackup",
    "VerifyTls",
    "VmdirPublish",
    "VmdirUnpublish",
    "serials_to_revoke",
]
