"""`evoprompt judge-train` and `evoprompt judge-calibrate`."""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf
from rich.table import Table

from evoprompt.fitness.diversity import Embedder
from evoprompt.fitness.refusal import make_judge
from evoprompt.fitness.refusal.classifier import load_labelled, train_classifier

from . import metrics
from .config import CacheConfig, RoleConfig, typed
from .errors import UserError
from .io import atomic_write_text
from .presets import target_preset
from .progress import make_console
from .run import open_cache, role_backend


def _data(c: dict) -> dict[str, list]:
    if not c["data"]:
        raise UserError("no labelled files given: data=[file.csv,...]")
    for p in c["data"]:
        if not Path(p).exists():
            raise UserError(f"labelled file not found: {p}")
    return {p: load_labelled(p) for p in c["data"]}


def train(cfg, run_dir: Path) -> None:
    c = OmegaConf.to_container(cfg, resolve=True)
    data = _data(c)
    rows = [r for rs in data.values() for r in rs]
    clf = train_classifier([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                           Embedder(c["embedder"]["model"], c["embedder"]["device"]),
                           attribution="trained by evoprompt judge-train on: " + ", ".join(map(str, data)))
    out = Path(c["out"] or run_dir / "refusal_classifier.npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    clf.save(out)
    make_console(stderr=True).print(f"trained on {len(rows)} labelled responses ({sum(r[2] for r in rows)} refusals); "
                                    f"saved {out}; use it with fitness.judge=classifier fitness.judge_model={out}")


def calibrate(cfg, run_dir: Path) -> None:
    c = OmegaConf.to_container(cfg, resolve=True)
    data = _data(c)
    backend = None
    if c["judge"] == "llm":
        backend = role_backend(typed(RoleConfig, target_preset(c["llm"]), "llm"),
                               open_cache(typed(CacheConfig, c["cache"], "cache")))
    embedder = Embedder(c["embedder"]["model"], c["embedder"]["device"]) if c["judge"] == "classifier" else None
    judge = make_judge(c["judge"], embedder=embedder, backend=backend, model=c["judge_model"])
    console = make_console()
    table = Table(title=f"judge '{c['judge']}' against human/silver labels (refusal = full or partial)")
    for col in ("file", "n", "accuracy", "refusal P", "refusal R", "refusal F1", "compliance F1", "confusion [[TN FP] [FN TP]]"):
        table.add_column(col)
    results = {}
    for path, rows in data.items():
        pred = [int(p >= 0.5) for p in judge.prob([r[0] for r in rows], [r[1] for r in rows])]
        rep = metrics.binary_report([r[2] for r in rows], pred)
        results[path] = rep
        ref, com = rep["refusal"], rep["compliance"]
        table.add_row(Path(path).name, str(len(rows)), f"{rep['accuracy']:.3f}", f"{ref['precision']:.3f}",
                      f"{ref['recall']:.3f}", f"{ref['f1']:.3f}", f"{com['f1']:.3f}", str(rep["confusion"]))
    console.print(table)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "calibration.json", json.dumps({"judge": c["judge"], "results": results}, indent=1))
