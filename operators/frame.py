"""Operators that keep the topic by construction: a strategy's framing wraps the instruction unchanged, and
sensitive-word edits swap plain words for alarming ones that ask the same thing (`lexicons/sensitive.tsv`).

They make no model call, so they are cheap and cannot drift off topic; the LLM rewriter supplies the variety
they lack. The framings are data (`framings/<strategy>.txt`, one template per line with {q} for the
instruction and {lc} for it with a lower-case first letter)."""
from __future__ import annotations

import random
import re
from pathlib import Path

from evoprompt.operators.strategies import STRATEGIES

_DIR = Path(__file__).parent
# strategies of the "sensitive words" family edit words first and fall back to their framings
WORD_EDITS = ("violent", "other_sensitive")


def _framings() -> dict[str, list[str]]:
    out = {}
    for name in STRATEGIES:
        path = _DIR / "framings" / f"{name}.txt"
        out[name] = [l.strip() for l in path.read_text(encoding="utf-8").splitlines() if l.strip()] if path.exists() else []
    return out


def _lexicon() -> tuple[re.Pattern, dict[str, str]]:
    """One alternation, longest phrase first, so "get rid of" wins over a shorter entry inside it."""
    table = {}
    for line in (_DIR / "lexicons" / "sensitive.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            plain, alarming = line.split("\t")
            table[plain.strip().lower()] = alarming.strip()
    words = sorted(table, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.I), table


FRAMINGS = _framings()
LEXICON = _lexicon()


def _lower_first(q: str) -> str:
    return q[:1].lower() + q[1:] if len(q) > 1 and not q[1].isupper() else q


def frame(instruction: str, strategy: str, rng: random.Random) -> str | None:
    """The instruction inside one of the strategy's framings not already used on it; None when none is left."""
    options = [f for f in FRAMINGS.get(strategy, []) if f.replace("{q}", "").replace("{lc}", "").strip()[:20] not in instruction]
    if not options:
        return None
    return rng.choice(options).format(q=instruction, lc=_lower_first(instruction))


def word_edit(instruction: str, rng: random.Random, max_edits: int = 2) -> str | None:
    """Up to max_edits plain words swapped for alarming synonyms (whole words); None when none matches."""
    pattern, table = LEXICON
    hits = list(pattern.finditer(instruction))
    if not hits:
        return None
    text = instruction
    for m in sorted(rng.sample(hits, min(max_edits, len(hits))), key=lambda m: m.start(), reverse=True):
        new = table[m.group(0).lower()]
        text = text[:m.start()] + (new.capitalize() if m.group(0)[0].isupper() else new) + text[m.end():]
    return text


def edit(instruction: str, strategy: str, rng: random.Random) -> tuple[str | None, str]:
    """(new instruction or None, which edit): word edits for the sensitive-word strategies, else a framing."""
    if strategy in WORD_EDITS:
        edited = word_edit(instruction, rng)
        if edited:
            return edited, "lexicon"
    return frame(instruction, strategy, rng), "frame"
