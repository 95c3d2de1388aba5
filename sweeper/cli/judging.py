"""What a sweep is judged against: the incident's inputs and the rules' settings.

`scan` and `merge` take the same options, declared once here (`judging_options`), and
turn them into the rules' `Context` the same way (`Judging.context`), so a merge re-runs the
fleet-wide rules exactly as each shard ran its own. A command decorated `@judged` takes one
`judging: Judging` parameter; its `--help` lists the options after its own.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sweeper.detect import Context

PathList = list[Path]

ExpiringDaysOption = Annotated[
    int, typer.Option(metavar="DAYS", min=0, help="Warn of certificates expiring this soon.")
]
RuleOption = Annotated[
    list[str], typer.Option("--rule", metavar="RULE", help="Run only this rule (repeatable).")
]
CrlOption = Annotated[
    PathList,
    typer.Option("--crl", metavar="FILE|DIR", help="CRL file or folder of CRLs, PEM or DER (repeatable)."),
]
IocOption = Annotated[
    PathList,
    typer.Option("--ioc", metavar="FILE", help="IOC file: fingerprints, spki:, serial:, PEM (repeatable)."),
]
CompromisedCaOption = Annotated[
    PathList,
    typer.Option("--compromised-ca", metavar="FILE", help="Certificate of a compromised CA (repeatable)."),
]
CaOption = Annotated[
    PathList, typer.Option("--ca", metavar="FILE", help="Issuer certificates to check CRLs and OCSP with.")
]
ExpectedRootsOption = Annotated[
    Path | None,
    typer.Option(metavar="FILE", help="PEM bundle of the roots the fleet should trust (for rogue-root)."),
]
BaselineOption = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE|last",
        help="Earlier scan report (JSON) whose anchors are expected; 'last': the previous run.",
    ),
]
OcspOption = Annotated[bool, typer.Option("--ocsp", help="Also ask each certificate's OCSP responder.")]
OcspTimeoutOption = Annotated[
    float, typer.Option(metavar="SECONDS", min=0.1, help="Seconds to wait for an OCSP answer.")
]
BadkeysOption = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE|DIR", help="badkeys' blocklist.dat (or its folder) for known-compromised-key."
    ),
]


@dataclass(frozen=True, slots=True)
class Judging:
    """The judging options of one command line, as given."""

    expiring_days: int
    rule: list[str]
    crl: list[Path]
    ioc: list[Path]
    compromised_ca: list[Path]
    ca: list[Path]
    expected_roots: Path | None
    baseline: Path | None
    ocsp: bool
    ocsp_timeout: float
    badkeys_blocklist: Path | None

    @property
    def rules(self) -> tuple[str, ...] | None:
        """The `--rule`s given, None for every rule."""
        return tuple(self.rule) or None

    def resolved(self, history_db: Path | None) -> Judging:
        """Every path absolute, `--baseline last` replaced by the report it means (`history_db`'s last run).

        :raises BadInput: `--baseline last` with no usable history (one line)
        """
        from sweeper import history
        from sweeper.errors import BadInput

        baseline = self.baseline
        if baseline == Path("last"):
            if history_db is None:
                raise BadInput("--baseline last: no history database to take the previous run from")
            baseline = history.last_report_path(history_db)
        given = {**self._values(), "baseline": baseline}
        return Judging(**{name: _absolute(value) for name, value in given.items()})

    def context(self, history_db: Path | None) -> Context:
        """Every input read and checked (exit 2 on a bad one); `--baseline last`: `history_db`'s last run."""
        from sweeper.detect import Context
        from sweeper.incident import load_incident

        judging = self.resolved(history_db)
        incident = load_incident(
            crls=judging.crl,
            iocs=judging.ioc,
            compromised_cas=judging.compromised_ca,
            cas=judging.ca,
            expected_roots=judging.expected_roots,
            baseline=judging.baseline,
            badkeys_blocklist=judging.badkeys_blocklist,
        )
        return Context(
            expiring_days=judging.expiring_days,
            incident=incident,
            ocsp=judging.ocsp,
            ocsp_timeout=judging.ocsp_timeout,
        )

    def as_args(self) -> tuple[str, ...]:
        """These options as a command line says them (what a shard's report records for `merge`)."""
        args: list[str] = []
        for name, value in self._values().items():
            flag = _FLAGS[name]
            if isinstance(value, bool):
                args += [flag] if value else []
            elif isinstance(value, list):
                args += [part for item in value for part in (flag, str(item))]
            elif value is not None:
                args += [flag, str(value)]
        return tuple(args)

    @classmethod
    def from_args(cls, args: Sequence[str], source: object) -> Judging:
        """Options said as a command line (`as_args`), read by the same parser as `scan`'s.

        :raises CorruptInput: naming `source`, when they do not parse (one line)
        """
        from sweeper.errors import CorruptInput

        parser = typer.Typer(add_completion=False)
        parser.command()(judging_options)
        try:
            judging = typer.main.get_command(parser).main(list(args), standalone_mode=False)
        except Exception as exc:  # typer's own click: its usage errors say `format_message`
            message = getattr(exc, "format_message", None)
            if message is None:
                raise
            raise CorruptInput(source, f"its judging options do not parse: {message()}") from None
        assert isinstance(judging, Judging)
        return judging

    def _values(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


def _absolute(value: object) -> object:
    """Paths made absolute (what a shard records must not depend on its working folder), the rest as is."""
    if isinstance(value, Path):
        return value.absolute()
    if isinstance(value, list):
        return [_absolute(item) for item in value]
    return value


def judging_options(
    expiring_days: ExpiringDaysOption = 30,
    rule: RuleOption = [],  # noqa: B006
    crl: CrlOption = [],  # noqa: B006
    ioc: IocOption = [],  # noqa: B006
    compromised_ca: CompromisedCaOption = [],  # noqa: B006
    ca: CaOption = [],  # noqa: B006
    expected_roots: ExpectedRootsOption = None,
    baseline: BaselineOption = None,
    ocsp: OcspOption = False,
    ocsp_timeout: OcspTimeoutOption = 5.0,
    badkeys_blocklist: BadkeysOption = None,
) -> Judging:
    """The judging options, as typer declares them; returns them as one value."""
    return Judging(
        expiring_days, rule, crl, ioc, compromised_ca, ca, expected_roots, baseline, ocsp, ocsp_timeout,
        badkeys_blocklist,
    )  # fmt: skip


def judged(command: Callable[..., None]) -> Callable[..., None]:
    """`command(..., judging: Judging)` as typer sees it: its own options, then `judging_options`'."""
    shared = inspect.signature(judging_options, eval_str=True).parameters
    own = inspect.signature(command, eval_str=True)
    parameters = [p for p in own.parameters.values() if p.name != "judging"] + list(shared.values())

    @functools.wraps(command)
    def with_judging(**given: Any) -> None:
        judging = judging_options(**{name: given.pop(name) for name in shared})
        command(judging=judging, **given)

    del with_judging.__wrapped__  # typer reads the signature below, not the command's own
    with_judging.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_judging.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return with_judging


def _flag(parameter: inspect.Parameter) -> str:
    """The option's name on the command line, as typer makes it."""
    (info,) = (
        meta for meta in parameter.annotation.__metadata__ if isinstance(meta, typer.models.OptionInfo)
    )
    declared = [decl for decl in info.param_decls or () if decl.startswith("--")]
    return declared[0] if declared else "--" + parameter.name.replace("_", "-")


_FLAGS = {
    name: _flag(parameter)
    for name, parameter in inspect.signature(judging_options, eval_str=True).parameters.items()
}
