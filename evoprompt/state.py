"""Run state and checkpoints: everything a resume needs, as JSON, written atomically."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UserError
from .io import atomic_write_text

log = logging.getLogger("evoprompt.state")

CHECKPOINT = "checkpoint.json"


@dataclass
class RunState:
    config_hash: str
    generation: int = -1                 # last finished generation (0 = seeds scored)
    current: dict = field(default_factory=dict)   # lineage -> candidate x_t
    best: dict = field(default_factory=dict)      # lineage -> best-ever safe candidate
    seeds: dict = field(default_factory=dict)     # lineage -> the seed record
    rejected: list = field(default_factory=list)  # seed-copy guard and gate rejections, with verdicts
    filtered: list = field(default_factory=list)  # candidates dropped before scoring, with the reason
    elites: dict = field(default_factory=dict)    # niche (lineage|family|length band) -> best candidates
    history: list = field(default_factory=list)   # every scored candidate, without samples
    logbook: list = field(default_factory=list)   # one record per generation
    chooser: dict = field(default_factory=dict)
    seen: list = field(default_factory=list)      # dedupe keys of every instruction produced
    archive: list = field(default_factory=list)   # unit embeddings of accepted instructions
    counters: dict = field(default_factory=dict)


def config_hash(cfg: dict) -> str:
    """Settings that change results; `generations` is left out so a finished run can be extended."""
    keep = {k: v for k, v in cfg.items() if k not in ("generations", "hydra", "cache")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save(state: RunState, run_dir: Path) -> None:
    atomic_write_text(Path(run_dir) / CHECKPOINT, json.dumps(asdict(state)))


def _set_aside(path: Path, why: str) -> None:
    """Moves an unusable checkpoint to CHECKPOINT.corrupt-<timestamp> with one warning line; the run starts over."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    k = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{k}")
        k += 1
    path.replace(aside)
    log.warning("checkpoint %s is unreadable (%s): moved to %s; starting the run from the seeds", path, why, aside.name)


_FIELDS = {f.name for f in dataclasses.fields(RunState)}


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
    if not isinstance(data, dict) or "config_hash" not in data or not set(data) <= _FIELDS:
        _set_aside(path, "not a checkpoint of this evoprompt version")
        return None
    if data.get("config_hash") != expected_hash:
        raise UserError(f"{path} was written with a different configuration; "
                        "use another hydra.run.dir or the same overrides")
    try:
        return RunState(**data)
    except TypeError as e:
        _set_aside(path, str(e))
        return None
