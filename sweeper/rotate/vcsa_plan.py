"""The part of the plan only a vCenter needs: which step each VECS entry gets, in which order, and
what the purge deletes besides trust (DESIGN "A vCenter keeps working only if these hold")."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sweeper.errors import BadInput
from sweeper.model import CertRecord, Node, NodeResult, Profile, vecs_label
from sweeper.platforms.vcdb import THUMBPRINTED_STORES
from sweeper.platforms.vcsa import (
    DATA_ENCIPHERMENT,
    MACHINE_CSR_ALIAS,
    MACHINE_SSL,
    SMS,
    SMS_SELF_SIGNED,
    STS_INTERNAL_SSL,
)
from sweeper.rotate.steps import (
    CopyMachineSsl,
    DeleteVecsEntries,
    RecertifyVecs,
    RegenerateSms,
    ReissueVecs,
    RekeyDataEncipherment,
    Step,
    UpdateVpxExt,
)

AFTER_ENTRIES = (CopyMachineSsl, RegenerateSms, UpdateVpxExt)
"""Steps that read what the re-issued entries became: they run after every entry of the node."""


def vecs_steps(
    node: Node, cert: CertRecord, store: str, common: dict[str, Any], new_data_key: bool
) -> list[Step]:
    """The step for one VECS identity entry: re-issued, re-certified with its key, copied or regenerated.

    :raises BadInput: the Machine SSL certificate would lose the vCenter's PNID (its CN)
    """
    if store == MACHINE_SSL and cert.entry == MACHINE_CSR_ALIAS:
        return []  # an old private key, not an identity: the purge deletes it
    if store == MACHINE_SSL:
        _keep_pnid(node, cert, common["profile"].names)
    if store == STS_INTERNAL_SSL:
        return [CopyMachineSsl(node=node.name, alias=cert.entry)]
    if store == SMS and cert.entry == SMS_SELF_SIGNED:
        return [RegenerateSms(node=node.name, alias=cert.entry, old_sha256=cert.facts.sha256)]
    if store == DATA_ENCIPHERMENT:
        common = {**common, "profile": replace(common["profile"], data_encipherment=True)}
        kind = RekeyDataEncipherment if new_data_key else RecertifyVecs
        return [kind(store=store, alias=cert.entry, **common)]
    return [ReissueVecs(store=store, alias=cert.entry, **common)]


def _keep_pnid(node: Node, cert: CertRecord, names: tuple[str, ...]) -> None:
    """vCenter's PNID (the Machine SSL CN it was deployed with) must stay in the SANs, or it breaks."""
    pnid = (cert.facts.common_name or "").lower()
    if pnid and pnid not in {name.lower() for name in names}:
        raise BadInput(
            f"node '{node.name}': its Machine SSL certificate names the vCenter's PNID '{pnid}', which "
            "the inventory does not allow it; add it to the node's names (vCenter stops working without it)"
        )


def ordered(node: Node, steps: list[Step]) -> list[Step]:
    """Entries first, then what depends on them; plus the VCDB thumbprints of a re-issued vCenter."""
    if node.profile is not Profile.VCSA:
        return steps
    first = [s for s in steps if not isinstance(s, AFTER_ENTRIES)]
    if any(isinstance(s, ReissueVecs) and s.store in THUMBPRINTED_STORES for s in first):
        steps = [*steps, UpdateVpxExt(node=node.name)]
    after = [s for s in steps if isinstance(s, AFTER_ENTRIES)]
    return first + sorted(after, key=lambda s: AFTER_ENTRIES.index(type(s)))


def purge_steps(node: Node, result: NodeResult) -> list[Step]:
    """`__MACHINE_CSR` keeps an old private key: deleted once its backup is in the journal."""
    label = vecs_label(MACHINE_SSL)
    if any(c.store == label and c.entry == MACHINE_CSR_ALIAS for c in result.certificates):
        return [DeleteVecsEntries(node=node.name, store=MACHINE_SSL, aliases=(MACHINE_CSR_ALIAS,))]
    return []
