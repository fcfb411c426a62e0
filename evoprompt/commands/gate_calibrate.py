"""`evoprompt gate-calibrate`: how well the harmlessness gate tells unsafe prompts from safe ones.

The gate is the only thing between a rewrite and the exports, and its threshold is a bare number
(0.5 by default) whose meaning depends on the judge model: a weak judge puts every prompt near the
same p(safe). This command runs the configured gate on labelled prompts (XSTest's safe/unsafe by
default) and reports accuracy and unsafe recall at the configured threshold, the AUROC of p(safe)
(threshold-free: can the judge rank at all?), and the threshold that rejects `target_recall` of the
unsafe prompts, with what that costs in safe prompts rejected."""
from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from rich.table import Table

from evoprompt import fmt, metrics
from evoprompt.errors import UserError
from evoprompt.files import atomic_write_text, read_csv, read_jsonl
from evoprompt.progress import make_console
from evoprompt.public_sets import DATA_ENV, PUBLIC_SETS, available, resolve
from evoprompt.records import GateCalibration, ThresholdReport
from evoprompt.roles import Roles
from evoprompt.schema import GateCalibrateConfig
from evoprompt.validate import typed

HELP = "accuracy / unsafe recall / AUROC / threshold of the harmlessness gate on labelled prompts"
CONFIG = "gate_calibrate"  # its config in evoprompt/conf

UNSAFE_LABELS = ("unsafe", "harmful", "1", "true")
SAFE_LABELS = ("safe", "harmless", "0", "false")


def read_labelled(path: Path, text_column: str, label_column: str) -> list[tuple[str, int]]:
    """(prompt, 1 if unsafe else 0) from a CSV or JSONL file; every problem is one UserError naming file and row."""
    if not path.is_file():
        raise UserError(f"labelled prompt file not found: {path}")
    rows = read_jsonl(path) if path.suffix in (".jsonl", ".json") else read_csv(path)[1]
    if not rows:
        raise UserError(f"{path}: no rows")
    out = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {i} is not a record")
        for col, role in ((label_column, "label_column"), (text_column, "text_column")):
            if row.get(col) in (None, ""):
                raise UserError(f"{path}: row {i} has no '{col}' ({role}); columns: {', '.join(map(str, row))}")
        label = str(row[label_column]).strip().lower()
        if label not in UNSAFE_LABELS + SAFE_LABELS:
            raise UserError(f"{path}: row {i}: label {row[label_column]!r} is neither safe ({', '.join(SAFE_LABELS)}) "
                            f"nor unsafe ({', '.join(UNSAFE_LABELS)})")
        out.append((str(row[text_column]), int(label in UNSAFE_LABELS)))
    return out


def balanced_sample(rows: list, limit: int | None, seed: int) -> list:
    """`limit` rows taken alternately from the unsafe and the safe ones (each shuffled with `seed`), so a small
    sample still has both classes; all rows in file order when limit is None."""
    if limit is None or limit >= len(rows):
        return rows
    rng = random.Random(seed)
    pools = [rng.sample([r for r in rows if r[1] == y], sum(r[1] == y for r in rows)) for y in (1, 0)]
    merged = [p[i] for i in range(max(map(len, pools))) for p in pools if i < len(p)]
    return merged[:limit]


def recall_threshold(p_safe: np.ndarray, unsafe: np.ndarray, target: float) -> float | None:
    """The lowest threshold t such that rejecting p_safe < t rejects at least `target` of the unsafe prompts;
    it sits halfway to the next higher score, so rounding it for display does not change what it rejects."""
    bad = np.sort(p_safe[unsafe == 1])
    if not len(bad):
        return None
    kth = bad[max(math.ceil(target * len(bad)), 1) - 1]
    above = p_safe[p_safe > kth]
    return float((kth + above.min()) / 2) if len(above) else float(np.nextafter(kth, 2.0))


def at_threshold(p_safe: np.ndarray, unsafe: np.ndarray, t: float) -> ThresholdReport:
    rep = metrics.binary_report(unsafe, (p_safe < t).astype(int))  # 1 = unsafe, i.e. rejected
    return ThresholdReport(threshold=t, accuracy=rep["accuracy"], unsafe_recall=rep["refusal"]["recall"],
                           unsafe_precision=rep["refusal"]["precision"], safe_pass_rate=rep["compliance"]["recall"],
                           confusion=rep["confusion"])


def summarise(p_safe: list[float], unsafe: list[int], threshold: float, target_recall: float) -> GateCalibration:
    from sklearn.metrics import roc_auc_score

    p, y = np.asarray(p_safe, dtype=float), np.asarray(unsafe, dtype=int)
    both = 0 < y.sum() < len(y)
    t = recall_threshold(p, y, target_recall)
    return GateCalibration(
        n=len(y), n_unsafe=int(y.sum()),
        auroc=float(roc_auc_score(y, -p)) if both else None,  # p(safe) ranks unsafe prompts low
        configured=at_threshold(p, y, threshold),
        target_recall=target_recall,
        for_target_recall=at_threshold(p, y, t) if t is not None else None,
        p_safe={name: {"min": float(p[y == k].min()), "median": float(np.median(p[y == k])),
                       "max": float(p[y == k].max())} for name, k in (("safe", 0), ("unsafe", 1)) if (y == k).any()},
    )


def _cells(r: ThresholdReport) -> list[str]:
    return [f"{r.threshold:.6g}", *(fmt.num(v) for v in (r.accuracy, r.unsafe_recall, r.unsafe_precision, r.safe_pass_rate))]


def markdown(s: GateCalibration) -> str:
    gate = s.gate
    rows = [["configured", *_cells(s.configured)]]
    if s.for_target_recall:
        rows.append([f"unsafe recall >= {s.target_recall}", *_cells(s.for_target_recall)])
    lines = ["# Harmlessness gate calibration", "",
             f"gate: {gate['backend']} `{gate['model']}`, mode {gate['mode']}, prompt `{gate['prompt']}`  ",
             f"data: {', '.join(s.data)} ({s.n} prompts, {s.n_unsafe} unsafe)", "",
             *fmt.md_table(["", "threshold on p(safe)", "accuracy", "unsafe recall", "unsafe precision",
                            "safe prompts passed"], rows)]
    lines += ["", f"AUROC (unsafe vs safe, from p(safe)): {fmt.num(s.auroc)}", ""]
    lines += [f"p(safe) of {k} prompts: min {v['min']:.4f}, median {v['median']:.4f}, max {v['max']:.4f}  "
              for k, v in s.p_safe.items()]
    return "\n".join(lines) + "\n"


def _files(c: GateCalibrateConfig) -> list[Path]:
    if c.data:
        return [Path(p) for p in c.data]
    if available("data:xstest"):
        return [resolve("data:xstest")]
    raise UserError(f"no labelled prompts: give data=[file.csv], or set {DATA_ENV} to a folder with a copy of "
                    f"XSTest ({PUBLIC_SETS['xstest'].source}) at {PUBLIC_SETS['xstest'].file}")


def main(cfg, run_dir: Path) -> GateCalibration:
    c = typed(GateCalibrateConfig, OmegaConf.to_container(cfg, resolve=True))
    if c.target_recall == 0:
        raise UserError(f"target_recall must be in (0, 1], got {c.target_recall}")
    if c.limit is not None and c.limit < 2:
        raise UserError(f"limit must be at least 2 (one prompt of each class) or null, got {c.limit}")
    files = _files(c)
    rows = [r for f in files for r in read_labelled(f, c.text_column, c.label_column)]
    rows = balanced_sample(rows, c.limit, c.seed)
    g = c.gate
    gate = Roles(c.cache).gate(g)

    p_safe: list[float] = []
    for start in range(0, len(rows), c.batch):
        chunk = rows[start:start + c.batch]
        p_safe += [v.p_safe for v in gate.judge([(text, None) for text, _ in chunk], c.seed)]
        print(f"gate: {len(p_safe)}/{len(rows)} prompts judged", file=sys.stderr, flush=True)
    s = summarise(p_safe, [y for _, y in rows], g.threshold, c.target_recall)

    s.gate = {"backend": g.backend, "model": g.model, "mode": g.mode, "prompt": g.prompt, "threshold": g.threshold}
    s.data = [str(f) for f in files]
    s.items = [{"text": t, "unsafe": y, "p_safe": p} for (t, y), p in zip(rows, p_safe)]
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "gate_calibration.json", json.dumps(s.to_json(), indent=1))
    atomic_write_text(run_dir / "gate_calibration.md", markdown(s))
    _print(s, run_dir)
    return s


def _print(s: GateCalibration, run_dir: Path) -> None:
    table = Table(title=f"harmlessness gate on {s.n} labelled prompts ({s.n_unsafe} unsafe); AUROC {fmt.num(s.auroc)}")
    for col in ("threshold on p(safe)", "accuracy", "unsafe recall", "unsafe precision", "safe passed"):
        table.add_column(col)
    for name, r in (("configured", s.configured), (f"recall >= {s.target_recall}", s.for_target_recall)):
        if r:
            first, *rest = _cells(r)
            table.add_row(f"{first} ({name})", *rest)
    console = make_console()
    console.print(table)
    console.print(f"AUROC {fmt.num(s.auroc)}; written {run_dir / 'gate_calibration.json'} and .md")
