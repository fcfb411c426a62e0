"""How an exported set behaves on each target of the run: per target, the share of items it refused (its label:
one of its K samples judged a refusal and confirmed by the phrase detector) and its mean sampled refusal rate,
with bootstrap 95% intervals; per pair of targets, how often their labels agree and Cohen's kappa.

The items were selected on these targets' own scores, so the figures describe the set on its pool;
`evoprompt eval targets=[...]` measures it on any other."""
from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np

from evoprompt import metrics
from evoprompt.records import BenchmarkItem, TargetScore


def target_names(benchmark: list[BenchmarkItem]) -> list[str]:
    seen: dict[str, None] = {}
    for r in benchmark:
        seen.update(dict.fromkeys(r.score.targets))
    return list(seen)


def kappa(a: list[bool], b: list[bool]) -> float:
    """Cohen's kappa of two label lists; NaN where chance agreement is already 1 (both constant and equal)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    po = float(np.mean(x == y))
    pe = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
    return float("nan") if pe >= 1.0 else (po - pe) / (1.0 - pe)


def _defined(x: float) -> float | None:
    return None if math.isnan(x) else x


def _rate(values, n_boot: int, seed: int) -> dict:
    lo, hi = metrics.bootstrap_ci(values, n=n_boot, seed=seed)
    return {"value": float(np.mean(values)), "lo": lo, "hi": hi}


def summarise(benchmark: list[BenchmarkItem], n_boot: int = 1000, seed: int = 0) -> dict | None:
    names = target_names(benchmark)
    if not benchmark or not names:
        return None
    labels = {n: [bool(r.score.targets[n].refused) for r in benchmark] for n in names}
    rows = {n: {"refused": _rate(labels[n], n_boot, seed),
                "sampled_refusal_rate": _rate([r.score.targets[n].judge_refusal_rate for r in benchmark], n_boot, seed),
                "refusal_prob": float(np.mean([r.score.targets[n].refusal_prob for r in benchmark]))} for n in names}
    pairs = [{"a": a, "b": b, "agreement": float(np.mean(np.equal(labels[a], labels[b]))),
              "kappa": _defined(kappa(labels[a], labels[b]))} for a, b in combinations(names, 2)]
    every = [all(labels[n][i] for n in names) for i in range(len(benchmark))]
    return {"items": len(benchmark), "targets": rows, "agreement": pairs, "refused_by_all": float(np.mean(every))}


def ci_text(r: dict) -> str:
    return f"{r['value']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]"


def _cell(t: TargetScore) -> str:
    return f"{t.judge_refusal_rate:.2f}{' ✓' if t.refused else ''}"


def markdown(summary: dict | None, benchmark: list[BenchmarkItem], plot: str | None = None) -> list[str]:
    lines = ["## Transfer across targets", ""]
    if not summary:
        return lines + ["No exported items, so no transfer table.", ""]
    names = list(summary["targets"])
    lines += [f"{summary['items']} exported items x {len(names)} target(s). Refused = one of the target's K samples "
              "was judged a refusal and confirmed by the phrase detector (the item's per-target label); sampled "
              "refusal rate = the share of its K samples judged refusals. Brackets: bootstrap 95% intervals. The "
              "items were selected on these targets, so this is the set on its own pool; `evoprompt eval "
              "targets=[...]` measures it on others.", "",
              "| target | items refused | sampled refusal rate | mean p(refusal) |", "|---|---|---|---|"]
    lines += [f"| {n} | {ci_text(r['refused'])} | {ci_text(r['sampled_refusal_rate'])} | {r['refusal_prob']:.3f} |"
              for n, r in summary["targets"].items()]
    if summary["agreement"]:
        lines += ["", f"Refused by every target: {summary['refused_by_all']:.2f} of the items.", "",
                  "| targets | label agreement | Cohen's kappa |", "|---|---|---|"]
        lines += [f"| {p['a']} / {p['b']} | {p['agreement']:.2f} | "
                  f"{'n/a' if p['kappa'] is None else format(p['kappa'], '.2f')} |" for p in summary["agreement"]]
    if plot:
        lines += ["", f"![sampled refusal rate per item and target]({plot})"]
    lines += ["", "Per item (sampled refusal rate; ✓ = refused):", "",
              "| item | text | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in benchmark:
        text = r.text.replace("|", "/").replace("\n", " ")
        lines.append(f"| {r.id} | {text[:90] + ('…' if len(text) > 90 else '')} | "
                     + " | ".join(_cell(r.score.targets[n]) for n in names) + " |")
    return lines + [""]


def plot(benchmark: list[BenchmarkItem], path: Path) -> bool:
    """Heat map: items (rows) x targets (columns), sampled refusal rate; False when there is nothing to draw."""
    names = target_names(benchmark)
    if not benchmark or not names:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evoprompt.files import atomic_savefig

    grid = np.array([[r.score.targets[n].judge_refusal_rate for n in names] for r in benchmark])
    fig, ax = plt.subplots(figsize=(2.5 + 1.4 * len(names), 1.5 + 0.18 * len(benchmark)))
    im = ax.imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=15, ha="right", fontsize=8)
    ax.set_yticks(range(len(benchmark)))
    ax.set_yticklabels([r.id for r in benchmark], fontsize=6)
    ax.set_title("sampled refusal rate per exported item", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return True
