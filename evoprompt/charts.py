"""Charts shared by the measuring commands (eval, align): grouped bars of rates with their intervals."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from evoprompt.files import atomic_savefig
from evoprompt.records import MetricRow


def bar_chart(series: dict[str, list[MetricRow]], groups: list[str], title: str, path: Path) -> None:
    """Grouped bars (one group per set, one bar per metric) with their [lo, hi] intervals."""
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(groups) + 2), 3.5))
    width = 0.8 / len(series)
    for k, (metric, rows) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        vals = [r.value for r in rows]
        err = [[v - r.lo for v, r in zip(vals, rows)], [r.hi - v for v, r in zip(vals, rows)]]
        ax.bar(xs, vals, width, yerr=err, capsize=3, label=metric)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=15, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("rate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
