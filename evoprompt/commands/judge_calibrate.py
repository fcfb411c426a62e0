"""`evoprompt judge-calibrate`: accuracy, precision, recall and F1 of a refusal judge on labelled responses.

With `save=PATH` it also sets the judge's threshold for the target whose answers were labelled (a person's
review-<reviewer>.jsonl from report.html, most usefully): the p(refusal) cut that maximises refusal F1 on all the
labelled rows together, written with its figures to a judge_calibration.json that run (`fitness.judge_calibration`)
and eval (`refusal_judge.calibration`) then use and record."""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf
from rich.table import Table

from evoprompt import metrics
from evoprompt.files import atomic_write_text
from evoprompt.fitness.refusal.classifier import load_labelled_files
from evoprompt.presets import target_preset
from evoprompt.progress import make_console
from evoprompt.roles import Roles
from evoprompt.schema import JudgeConfig, RoleConfig
from evoprompt.validate import typed

HELP = "accuracy / precision / recall / F1 of a refusal judge on labelled responses"
CONFIG = "judge"  # its config in evoprompt/conf


def main(cfg, run_dir: Path) -> None:
    c = typed(JudgeConfig, OmegaConf.to_container(cfg, resolve=True))
    data = load_labelled_files(c.data)
    roles = Roles(c.cache, c.embedder)
    j = c.judge
    llm = roles.backend("refusal judge", typed(RoleConfig, target_preset("embedded"), "judge.model")) \
        if j.name == "llm" and not j.model else None
    judge = roles.judge(j, llm=llm)
    table = Table(title=f"judge '{j.name}' against human/silver labels (refusal = full or partial)")
    for col in ("file", "n", "accuracy", "refusal P", "refusal R", "refusal F1", "compliance F1", "confusion [[TN FP] [FN TP]]"):
        table.add_column(col)
    results, probs = {}, {}
    for path, rows in data.items():
        probs[path] = judge.prob([r[0] for r in rows], [r[1] for r in rows])
        pred = [int(p >= 0.5) for p in probs[path]]
        rep = metrics.binary_report([r[2] for r in rows], pred)
        results[path] = rep
        ref, com = rep["refusal"], rep["compliance"]
        table.add_row(Path(path).name, str(len(rows)), f"{rep['accuracy']:.3f}", f"{ref['precision']:.3f}",
                      f"{ref['recall']:.3f}", f"{ref['f1']:.3f}", f"{com['f1']:.3f}", str(rep["confusion"]))
    console = make_console()
    console.print(table)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "calibration.json", json.dumps({"judge": j.name, "results": results}, indent=1))
    if c.save:
        y = [r[2] for rows in data.values() for r in rows]
        p = [q for path in data for q in probs[path]]
        best = best_threshold(y, p)
        atomic_write_text(Path(c.save), json.dumps({"judge": j.name, "judge_model": j.model, **best,
                                                    "data": list(data), "n": len(y)}, indent=1))
        console.print(f"threshold {best['threshold']:.3f}: refusal F1 {best['f1']:.3f} (at 0.5: {best['f1_at_0.5']:.3f}); "
                      f"written to {c.save} (use it with fitness.judge.calibration= or refusal_judge.calibration=)")


def best_threshold(y: list[int], p: list[float]) -> dict:
    """The cut between two neighbouring scores (midpoint) with the highest refusal F1; ties go to the one
    nearest 0.5, so a judge already right at 0.5 keeps it."""
    def f1(t):
        return metrics.binary_report(y, [int(q >= t) for q in p])["refusal"]["f1"]

    xs = sorted(set(p))
    cuts = [0.5] + [(a + b) / 2 for a, b in zip(xs, xs[1:])]
    cut = max(cuts, key=lambda t: (round(f1(t), 9), -abs(t - 0.5)))
    return {"threshold": min(max(cut, 1e-3), 1 - 1e-3), "f1": f1(cut), "f1_at_0.5": f1(0.5)}
