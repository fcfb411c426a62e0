"""What people decided about a run's items: the `review-<reviewer>.jsonl` files that report.html's review mode
saves, read and combined.

A file holds one row per reviewed item (`kind` "item": `id`, `decision` keep | drop | unsure, `reason`) and one
row per labelled response (`kind` "response": `id`, `sample`, `prompt`, `response`, `label` refusal | compliance
| partial), each with its `reviewer`. `export review=[...]` keeps an item only when the rule holds: `all` (every
reviewer who saw it kept it) or `majority` (more than half of them did); `unsure` never counts as keep. Agreement
is Cohen's kappa for two reviewers and Fleiss' kappa for more, over the items every reviewer saw, with a
bootstrap interval over those items."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evoprompt.errors import UserError

DECISIONS = ("keep", "drop", "unsure")
LABELS = ("refusal", "compliance", "partial")


@dataclass
class Review:
    """Every reviewer's decision per item id, and the labelled responses."""
    decisions: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)  # id -> reviewer -> (decision, reason)
    responses: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def reviewers(self) -> list[str]:
        return sorted({r for by in self.decisions.values() for r in by})

    def kept(self, item_id: str, rule: str) -> bool:
        votes = [d for d, _ in self.decisions.get(item_id, {}).values()]
        if not votes:
            return False
        keeps = votes.count("keep")
        return keeps == len(votes) if rule == "all" else keeps > len(votes) / 2

    def reasons(self, item_id: str) -> list[dict]:
        return [{"reviewer": r, "decision": d, "reason": why} for r, (d, why) in sorted(self.decisions.get(item_id, {}).items())]


def _field(row: dict, key: str, where: str, valid=None) -> str:
    v = row.get(key)
    if v is None or v == "":
        raise UserError(f"{where}: no '{key}'" + (f"; valid: {', '.join(valid)}" if valid else ""))
    if valid and v not in valid:
        raise UserError(f"{where}: {key} '{v}' is not one of {', '.join(valid)}")
    return str(v)


def load_review(paths: list[str]) -> Review:
    """The review files, checked row by row: a bad row is one line naming its file, line and key."""
    out = Review(files=[str(p) for p in paths])
    if not paths:
        raise UserError("review=[] names no review file; give the review-<reviewer>.jsonl files report.html saved")
    for path in map(Path, paths):
        if not path.is_file():
            raise UserError(f"review file {path} does not exist")
        default = path.stem.removeprefix("review-") or "anonymous"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: not a JSON record ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}: not a JSON object")
            reviewer = str(row.get("reviewer") or default)
            item = _field(row, "id", where)
            if row.get("kind", "item") == "response":
                out.responses.append({"id": item, "reviewer": reviewer, "sample": row.get("sample"),
                                      "prompt": _field(row, "prompt", where), "response": str(row.get("response", "")),
                                      "label": _field(row, "label", where, LABELS)})
            else:
                decision = _field(row, "decision", where, DECISIONS)
                out.decisions.setdefault(item, {})[reviewer] = (decision, str(row.get("reason") or ""))
    return out


def _cohen(a: list[str], b: list[str]) -> float:
    po = float(np.mean([x == y for x, y in zip(a, b)]))
    ca, cb, n = Counter(a), Counter(b), len(a)
    pe = sum(ca[c] * cb[c] for c in DECISIONS) / (n * n)
    return float("nan") if pe >= 1.0 else (po - pe) / (1.0 - pe)


def _fleiss(table: np.ndarray) -> float:
    """table: items x categories, counts of raters (the same number per item)."""
    n = table.sum(1)[0]
    p_cat = table.sum(0) / table.sum()
    p_item = ((table * (table - 1)).sum(1)) / (n * (n - 1))
    pe = float((p_cat ** 2).sum())
    return float("nan") if pe >= 1.0 else (float(p_item.mean()) - pe) / (1.0 - pe)


def agreement(review: Review, n_boot: int = 1000, seed: int = 0) -> dict | None:
    """Kappa over the items every reviewer decided, with a bootstrap 95% interval; None under two reviewers."""
    people = review.reviewers
    if len(people) < 2:
        return None
    common = sorted(i for i, by in review.decisions.items() if all(p in by for p in people))
    if len(common) < 2:
        return {"method": "Cohen's kappa" if len(people) == 2 else "Fleiss' kappa", "items": len(common),
                "kappa": None, "lo": None, "hi": None}
    votes = [[review.decisions[i][p][0] for p in people] for i in common]

    def stat(rows):
        if len(people) == 2:
            return _cohen([r[0] for r in rows], [r[1] for r in rows])
        return _fleiss(np.array([[r.count(c) for c in DECISIONS] for r in rows], dtype=float))

    rng = np.random.default_rng(seed)
    boots = [stat([votes[j] for j in rng.integers(0, len(votes), len(votes))]) for _ in range(n_boot)]
    boots = [b for b in boots if not np.isnan(b)]
    k = stat(votes)
    return {"method": "Cohen's kappa" if len(people) == 2 else "Fleiss' kappa", "items": len(common),
            "kappa": None if np.isnan(k) else k,
            "lo": float(np.percentile(boots, 2.5)) if boots else None,
            "hi": float(np.percentile(boots, 97.5)) if boots else None}


def summary(review: Review | None, item_ids: list[str], rule: str) -> dict | None:
    """What the dataset card reports: reviewers, items seen / kept / dropped / unsure (under the rule), agreement."""
    if review is None:
        return None
    seen = [i for i in item_ids if i in review.decisions]
    kept = [i for i in seen if review.kept(i, rule)]
    dropped = [i for i in seen if not review.kept(i, rule) and
               any(d == "drop" for d, _ in review.decisions[i].values())]
    return {"files": review.files, "reviewers": review.reviewers, "rule": rule, "items": len(item_ids),
            "seen": len(seen), "kept": len(kept), "dropped": len(dropped),
            "unsure": len(seen) - len(kept) - len(dropped), "not_seen": len(item_ids) - len(seen),
            "responses_labelled": len(review.responses), "agreement": agreement(review)}
