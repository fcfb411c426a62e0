"""Run state and checkpoints: everything a resume needs, as JSON, written atomically."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UserError

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
    tmp = run_dir / (CHECKPOINT + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(asdict(state), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, run_dir / CHECKPOINT)


def load(run_dir: Path, expected_hash: str) -> RunState | None:
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: unreadable checkpoint ({e}); remove it to start over") from None
    if data.get("config_hash") != expected_hash:
        raise UserError(f"{path} was written with a different configuration; "
                        "use another hydra.run.dir or the same overrides")
    return RunState(**data)
