"""The keep rate of reviewed items (tests/data/labels/items_review.jsonl, docs/review.md): overall and per run
configuration, method, strategy and generation, each with a Wilson 95% interval (unsure counts as not kept).

    python scripts/keep_rate.py [LABELS.jsonl] [--by run,method,strategy,generation]"""
from __future__ import annotations

import argparse
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "labels" / "items_review.jsonl"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    mid, half = (p + z * z / (2 * n)), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (mid - half) / (1 + z * z / n), (mid + half) / (1 + z * z / n)


def table(rows: list[dict], key: str) -> list[str]:
    groups = defaultdict(list)
    for r in rows:
        groups[str(r.get(key, "-"))].append(r)
    out = [f"| {key} | n | keep | rate [95% CI] | drop reasons |", "|---|---:|---:|---|---|"]
    for name, rs in sorted(groups.items()):
        k = sum(r["decision"] == "keep" for r in rs)
        lo, hi = wilson(k, len(rs))
        reasons = Counter(r["reason"] for r in rs if r["decision"] != "keep")
        out.append(f"| {name} | {len(rs)} | {k} | {k / len(rs):.2f} [{lo:.2f}, {hi:.2f}] | "
                   + ", ".join(f"{why or 'unsure'} {n}" for why, n in reasons.most_common()) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labels", nargs="?", default=str(LABELS))
    ap.add_argument("--by", default="run,method,strategy,generation")
    a = ap.parse_args()
    rows = [json.loads(x) for x in Path(a.labels).read_text(encoding="utf-8").splitlines() if x.strip()]
    k = sum(r["decision"] == "keep" for r in rows)
    lo, hi = wilson(k, len(rows))
    print(f"{len(rows)} reviewed items, {k} kept: {k / len(rows):.2f} [{lo:.2f}, {hi:.2f}]\n")
    for key in a.by.split(","):
        print("\n".join(table(rows, key)) + "\n")


if __name__ == "__main__":
    main()
