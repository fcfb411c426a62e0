"""What a run may publish, decided again at export time from the run directory's files.

A run directory is a folder of ordinary files that anyone can edit between `run` and `export`, so nothing in it is
taken on trust: an item is published only when its recorded gate verdict is `safe`, it passes the blocklist and
the person-harm screen as they are now (on normalised text), and, with a review, the reviewers kept it under the
rule, with the decision bound to the item's id and its text. SFT/DPO pairs are published only for items that are
published. The rejected config holds the gate's and guard's rejections, never what reviewers dropped. Seeds are
never published (items name their seed by id). What is held back is returned with the reason, for the export's
withheld record beside (not inside) the published folder."""
from __future__ import annotations

from dataclasses import dataclass, field

from evoprompt.errors import UserError
from evoprompt.fitness.gate import screen
from evoprompt.publish.facts import model_name, targets
from evoprompt.records import BenchmarkItem, Rejection
from evoprompt.review import ReviewSummary, load_review, summary
from evoprompt.rundir.reader import Run


@dataclass
class Publishable:
    run: Run
    items: list[BenchmarkItem]
    sft: list[dict]
    dpo: list[dict]
    rejected: list[Rejection]
    withheld: list[dict] = field(default_factory=list)  # {"id", "text", "why"}: items not published, and why
    review: ReviewSummary | None = None


def _why_not(b: BenchmarkItem, blocklist: list[str]) -> str | None:
    if b.safety.verdict != "safe":
        return f"gate verdict {b.safety.verdict!r}, not 'safe'"
    return screen(b.text, blocklist)


def publishable(run: Run, review: list[str] | None = None, rule: str = "all") -> Publishable:
    blocklist = run.config.gate.blocklist if run.config else []
    items, withheld = [], []
    for b in run.benchmark:
        why = _why_not(b, blocklist)
        if why:
            withheld.append({"id": b.id, "text": b.text, "why": why})
        else:
            items.append(b)
    reviewed = None
    if review:
        decisions = load_review(review)
        if not set(decisions.decisions) & {b.id for b in run.benchmark}:
            raise UserError(f"no item id in {', '.join(review)} is an item of {run.path / 'benchmark.jsonl'} "
                            "(a review of another run?)")
        bound = decisions.bound({b.id: b.text for b in items})
        reviewed = summary(bound, [b.id for b in items], rule)
        kept = [b for b in items if bound.kept(b.id, rule)]
        for b in items:
            if not bound.kept(b.id, rule):
                votes = "; ".join(f"{r['reviewer']}: {r['decision']}" + (f" ({r['reason']})" if r["reason"] else "")
                                  for r in bound.reasons(b.id))
                withheld.append({"id": b.id, "text": b.text, "why": f"review ({rule}): {votes or 'not reviewed with this text'}"})
        items = kept
    texts = {b.text for b in items}
    sft = [r for r in run.sft if _prompt(r, "messages") in texts]
    dpo = [r for r in run.dpo if _prompt(r, "prompt") in texts]
    rejected = [r for r in run.rejected if r.stage != "review"]
    return Publishable(run, items, sft, dpo, rejected, withheld, reviewed)


def _prompt(row: dict, key: str) -> str | None:
    """The user turn of a TRL conversational record."""
    turns = row.get(key)
    if not isinstance(turns, list):
        return None
    return next((t.get("content") for t in turns if isinstance(t, dict) and t.get("role") == "user"), None)


def eval_items(p: Publishable) -> list[dict]:
    """The slim items the inspect and lm-eval tasks read: what a prompt is and what the run measured."""
    target = targets(p.run)[0]
    return [{"id": r.id, "text": r.text, "category": r.category, "refusal_prob": r.score.refusal_prob,
             "judge_refusal_rate": r.score.judge_refusal_rate, "target": target} for r in p.items]


__all__ = ["Publishable", "eval_items", "model_name", "publishable"]
