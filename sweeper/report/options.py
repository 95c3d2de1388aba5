"""What a renderer may need beyond the report itself, gathered in one value."""

from __future__ import annotations

from dataclasses import dataclass

from sweeper.model import Severity


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """`fail_on`: findings at or above it fail a CI run (JUnit failures, as `--fail-on` sets exit 1)."""

    fail_on: Severity = Severity.HIGH
