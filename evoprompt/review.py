"""What people decided about a run's items: the `review-<reviewer>.jsonl` files that report.html's review mode
saves, read and combined.

A file holds one row per reviewed item (`kind` "item": `id`, `text`, `decision` keep | drop | unsure, `reason`)
and one row per labelled response (`kind` "response": `id`, `sample`, `prompt`, `response`, `label` refusal |
compliance | partial), each with its `reviewer`. A decision counts for an item only when both its id and its text
are the item's: ids are positional (seed, generation, operator), so another run's review, or an item edited after
review, is never taken as reviewed. One reviewer name belongs to one file: two files under the same name would
let the later one overwrite the earlier's decisions, so they are refused. `export review=[...]` keeps an item only
when the rule holds: `all` (every reviewer who saw it kept it) or `majority` (more than half of them did); `unsure`
never counts as keep. Agreement is Cohen's kappa for two reviewers and Fleiss' kappa for more, over the items
every reviewer saw, with a bootstrap interval over those items."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evoprompt.errors import UserError
from evoprompt.files import numbered_jsonl

DECISIONS = ("keep", "drop", "unsure")
LABELS = ("refusal", "compliance", "partial")


@dataclass
class Review:
    """Every reviewer's decision per item id (with the text they saw), and the labelled responses."""
    decisions: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)  # id -> reviewer -> (decision, reason)
    texts: dict[str, dict[str, str]] = field(default_factory=dict)                  # id -> reviewer -> text seen
    responses: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def reviewers(self) -> list[str]:
        return sorted({r for by in self.decisions.values() for r in by})

    def bound(self, items: dict[str, str]) -> Review:
        """Only the decisions on these items (id -> text) whose reviewer saw the item's text as it is now."""
        out = Review(responses=self.responses, files=self.files)
        for i, text in items.items():
            by = {r: d for r, d in self.decisions.get(i, {}).items() if self.texts[i][r] == text}
            if by:
                out.decisions[i] = by
                out.texts[i] = {r: text for r in by}
        return out

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
    owner: dict[str, Path] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise UserError(f"review file {path} does not exist")
        default = path.stem.removeprefix("review-") or "anonymous"
        for n, row in numbered_jsonl(path):
            where = f"{path}:{n}"
            reviewer = str(row.get("reviewer") or default)
            if owner.setdefault(reviewer, path) != path:
                raise UserError(f"reviewer '{reviewer}' has two review files, {owner[reviewer]} and {path}: one would "
                                "overwrite the other's decisions; give each reviewer their own name (report.html's "
                                "reviewer field) and save again")
            item = _field(row, "id", where)
            if row.get("kind", "item") == "response":
                out.responses.append({"id": item, "reviewer": reviewer, "sample": row.get("sample"),
                                      "prompt": _field(row, "prompt", where), "response": str(row.get("response", "")),
                                      "label": _field(row, "label", where, LABELS)})
            else:
                decision = _field(row, "decision", where, DECISIONS)
                out.decisions.setdefault(item, {})[reviewer] = (decision, str(row.get("reason") or ""))
                out.texts.setdefault(item, {})[reviewer] = _field(row, "text", where)
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


@dataclass
class Agreement:
    method: str
    items: int
    kappa: float | None
    lo: float | None
    hi: float | None


@dataclass
class ReviewSummary:
    """What the dataset card reports of a review: reviewers, items seen / kept / dropped / unsure under the rule,
    agreement between reviewers."""
    files: list[str]
    reviewers: list[str]
    rule: str
    items: int
    seen: int
    kept: int
    dropped: int
    unsure: int
    not_seen: int
    responses_labelled: int
    agreement: Agreement | None


def summary(review: Review | None, item_ids: list[str], rule: str) -> ReviewSummary | None:
    if review is None:
        return None
    seen = [i for i in item_ids if i in review.decisions]
    kept = [i for i in seen if review.kept(i, rule)]
    dropped = [i for i in seen if not review.kept(i, rule) and
               any(d == "drop" for d, _ in review.decisions[i].values())]
    a = agreement(review)
    return ReviewSummary(review.files, review.reviewers, rule, len(item_ids), len(seen), len(kept), len(dropped),
                         len(seen) - len(kept) - len(dropped), len(item_ids) - len(seen), len(review.responses),
                         Agreement(**a) if a else None)
