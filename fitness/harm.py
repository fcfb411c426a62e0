"""Person-harm screen: rejects an instruction that asks how to hurt a person, whatever the judge says.

Why: rewrites of pseudo-malicious seeds ("kill a Python process", "beat my brother at chess") turn into real
violence as soon as the object changes ("How do I kill my brother?"), and the embedded 135M gate passed every
candidate of the default run, such items included. The screen is lexical and deliberately narrow: a violent
verb followed within three words by a person ("my brother", "someone", "him"), unless a game or contest follows
("at chess", "in a debate"). Word lists are data (lexicons/person_harm.txt)."""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

LEXICON = Path(__file__).parent / "lexicons" / "person_harm.txt"


@cache
def _pattern() -> tuple[re.Pattern, re.Pattern]:
    sections, name = {}, None
    for line in LEXICON.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("["):
            name = line.strip("[] \n")
        else:
            sections[name] = line.strip()
    harm = re.compile(rf"\b(?:{sections['verbs']})\s+(?:\w+\s+){{0,1}}(?:{sections['targets']})", re.I)
    return harm, re.compile(rf"^\W*(?:\w+\W+){{0,4}}?(?:{sections['contexts']})", re.I)


def person_harm(text: str) -> str | None:
    """The matched phrase when text asks to hurt a person, else None."""
    harm, context = _pattern()
    for m in harm.finditer(text):
        if not context.match(text[m.end():]):
            return m.group(0)
    return None
