"""Fault injection for the crash tests: kill the process at a named point, so a test can prove that an
interrupted run or write loses nothing. Without EVOPROMPT_KILL_AT in the environment it does nothing."""
from __future__ import annotations

import os
import signal

KILL_ENV = "EVOPROMPT_KILL_AT"
_kill_hits = 0


def kill_point(name: str) -> None:
    """Fault-injection hook for the crash tests: with EVOPROMPT_KILL_AT="SUBSTR:N" in the environment, the
    N-th call (counted in this process, from 1) whose name contains SUBSTR SIGKILLs this process. Without the
    variable it does nothing. RunProgress.stage(text) calls it with the stage text; atomic writes call it
    with "write FILENAME" between the fsync of the temporary file and the rename."""
    global _kill_hits
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    substr, _, n = spec.rpartition(":")
    if not substr or not n.isdigit():
        return
    if substr in name:
        _kill_hits += 1
        if _kill_hits == int(n):
            os.kill(os.getpid(), signal.SIGKILL)
