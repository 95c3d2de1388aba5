"""asyncssh's log calls made free when their level is off, as it is unless an operator turns it on.

asyncssh's `SSHLogger.log` turns every argument into text (algorithm lists, host tuples, bytes)
before `logging` asks whether the level is enabled, some ten times per connection: ~2.5 % of a
1,000-node sweep's CPU spent on messages nobody reads. The check is made first here; a level that
is on (a handler at INFO or DEBUG for "asyncssh") logs exactly as before.
"""

from __future__ import annotations

import functools
from typing import Any

from asyncssh.logging import SSHLogger


def skip_disabled_levels() -> None:
    """Make `SSHLogger.log` return at once for a level its logger would drop (idempotent)."""
    log = SSHLogger.log
    if getattr(log, "checks_level_first", False):
        return

    @functools.wraps(log)
    def checked(self: SSHLogger, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            log(self, level, msg, *args, **kwargs)

    checked.checks_level_first = True  # type: ignore[attr-defined]
    SSHLogger.log = checked  # type: ignore[method-assign]
