"""Loaded by inspect_ai through its `inspect_ai` entry point (pyproject.toml) before it resolves tasks.

inspect-ai 0.3.x cannot run a task file given by absolute path (`inspect eval /abs/dir/task.py`): task discovery
passes the path to Path.glob, which raises "Non-relative patterns are unsupported" (upstream issue
UKGovernmentBEIS/inspect_ai#5267, open). The task `evoprompt export` writes is mostly run that way, from scripts.
This globs an absolute pattern from its filesystem anchor instead; relative patterns go through unchanged, and
nothing changes once inspect accepts absolute paths itself."""
from __future__ import annotations

from pathlib import Path


def _absolute_globs_ok(task_files):
    def task_files_abs(globs: list[str] = [], root_dir: Path | None = None) -> list[Path]:  # noqa: B006 (inspect's signature)
        absolute = [g for g in globs if Path(g).is_absolute()]
        if not absolute:
            return task_files(globs, root_dir)
        found = [f for g in map(Path, absolute) for f in task_files([str(g.relative_to(g.anchor))], Path(g.anchor))]
        relative = [g for g in globs if g not in absolute]
        return found + (task_files(relative, root_dir) if relative else [])

    task_files_abs.evoprompt_patched = True
    return task_files_abs


def install() -> None:
    from inspect_ai._eval import list as task_list
    from inspect_ai._eval import loader

    for module in (task_list, loader):
        if not getattr(module.task_files, "evoprompt_patched", False):
            module.task_files = _absolute_globs_ok(module.task_files)


try:
    install()
except (ImportError, AttributeError):  # another inspect layout: leave it alone
    pass
