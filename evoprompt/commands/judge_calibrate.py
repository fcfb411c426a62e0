"""`evoprompt judge-calibrate`: accuracy, precision, recall and F1 of a refusal judge on labelled responses."""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf
from rich.table import Table

from evoprompt import metrics
from evoprompt.fitness.refusal.classifier import load_labelled_files
from evoprompt.files import atomic_write_text
from evoprompt.presets import target_preset
from evoprompt.progress import make_console
from evoprompt.roles import Roles
from evoprompt.schema import JudgeConfig, RoleConfig, typed


def main(cfg, run_dir: Path) -> None:
    c = typed(JudgeConfig, OmegaConf.to_container(cfg, resolve=True))
    data = load_labelled_files(c.data)
    roles = Roles(c.cache, c.embedder)
    llm = roles.backend("refusal judge", typed(RoleConfig, target_preset(c.llm), "llm")) if c.judge == "llm" else None
    judge = roles.judge(c.judge, llm=llm, model=c.judge_model)
    table = Table(title=f"judge '{c.judge}' against human/silver labels (refusal = full or partial)")
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
    make_console().print(table)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "calibration.json", json.dumps({"judge": c.judge, "results": results}, indent=1))
