"""An export folder written whole or not at all, and never over files evoprompt did not write.

The folder is built under a hidden name beside `out` and renamed into place in one step, so a reader (or an
interrupted export) sees the old export or the new one. `out` may be missing, empty, or an earlier export of
evoprompt: its manifest (MANIFEST, every file it wrote with its sha256) must list exactly the files that are there,
so a file someone added or changed in it stops the export instead of being deleted."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from evoprompt.errors import UserError
from evoprompt.files import atomic_write_text

MANIFEST = ".evoprompt-export.json"


def _files(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file() and f.name != MANIFEST}


def _earlier_export(out: Path) -> bool:
    manifest = out / MANIFEST
    if not manifest.is_file():
        return False
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8")).get("files")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False
    return isinstance(listed, dict) and listed == _files(out)


def write_folder(out: Path, build: Callable[[Path], dict]) -> dict:
    """build(tmp) writes the export into the empty folder tmp and returns what it wrote; then tmp becomes out."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"out={out} is a file; give a folder for the export")
    if out.is_dir() and any(out.iterdir()) and not _earlier_export(out):
        raise UserError(f"out={out} is not empty and is not an unchanged earlier export of evoprompt: export writes "
                        "into a new folder (or over its own earlier export) and never overwrites or deletes files it "
                        "did not write; give another out=")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = out.parent / f".{out.name}.tmp-{os.getpid()}", out.parent / f".{out.name}.old-{os.getpid()}"
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    try:
        written = build(tmp)
        atomic_write_text(tmp / MANIFEST, json.dumps({"files": _files(tmp)}, indent=1))
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return written
