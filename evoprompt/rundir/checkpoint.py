"""Run state and checkpoints: everything a resume needs, as JSON, written atomically."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from evoprompt.errors import UserError
from evoprompt.files import atomic_write_text
from evoprompt.records import FORMAT_VERSION, RunState

log = logging.getLogger("evoprompt.rundir.checkpoint")

CHECKPOINT = "checkpoint.json"


def config_hash(cfg: dict) -> str:
    """Settings that change results; `generations` is left out so a finished run can be extended."""
    keep = {k: v for k, v in cfg.items() if k not in ("generations", "hydra", "cache")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save(state: RunState, run_dir: Path) -> None:
    atomic_write_text(Path(run_dir) / CHECKPOINT, json.dumps(state.to_json() | {"format_version": FORMAT_VERSION}))


def _set_aside(path: Path, why: str) -> None:
    """Moves an unusable checkpoint to CHECKPOINT.corrupt-<timestamp> with one warning line; the run starts over."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    k = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{k}")
        k += 1
    path.replace(aside)
    log.warning("checkpoint %s is unreadable (%s): moved to %s; starting the run from the seeds", path, why, aside.name)


def load(run_dir: Path, expected_hash: str) -> RunState | None:
    """The checkpoint in run_dir, or None when there is none or it is unreadable (moved aside with a warning)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        _set_aside(path, f"{type(e).__name__}: {e}")
        return None
    except OSError as e:
        raise UserError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    if not isinstance(data, dict) or "config_hash" not in data:
        _set_aside(path, "not an evoprompt checkpoint")
        return None
    if data.get("config_hash") != expected_hash:
        raise UserError(f"{path} was written with a different configuration; "
                        "use another hydra.run.dir or the same overrides")
    try:
        return RunState.from_json(data)
    except (TypeError, AttributeError, KeyError) as e:
        _set_aside(path, f"{type(e).__name__}: {e}")
        return None
