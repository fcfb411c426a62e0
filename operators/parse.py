"""Robust extraction of "instruction + reason" from a rewriter's free text."""
from __future__ import annotations

import json
import re

_LABEL = r"[\*_#\s>\-]*(?:new |modified |rewritten |merged |final )?{word}[\*_ \t]*[:\-–]+[\*_ \t]*"
_INSTR = re.compile(_LABEL.format(word="instruction") + r"(.*?)(?=\n[\*_#\s>\-]*reason\b|\Z)", re.I | re.S)
_REASON = re.compile(_LABEL.format(word="reason") + r"(.*)", re.I | re.S)
_PREAMBLE = re.compile(r"^(sure|okay|ok|here is|here's|certainly|of course)\b.*[:!.]$", re.I)
_REFUSAL = re.compile(r"^(i'm sorry|i am sorry|sorry|i cannot|i can't|i can not|i won't|as an ai)\b", re.I)
_PLACEHOLDER = re.compile(r"<[^>]*(instruction|reason)[^>]*>", re.I)


class ParseError(ValueError):
    """Why a rewriter output was rejected."""


def _clean(s: str) -> str:
    s = re.sub(r"\s+", " ", s.replace("```", " ")).strip()
    return s.strip(" *_\"'“”`").strip()


def _from_json(text: str):
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        return None
    try:
        obj = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("instruction"), str):
        return obj["instruction"], str(obj.get("reason", ""))
    return None


def parse_rewrite(text: str) -> tuple[str, str]:
    """(instruction, reason) from free text; raises ParseError when nothing usable is there."""
    found = _from_json(text)
    if found is None:
        m = _INSTR.search(text)
        if m:
            r = _REASON.search(text[m.end():]) or _REASON.search(text)
            found = m.group(1), r.group(1) if r else ""
        else:
            lines = [l for l in (_clean(x) for x in text.splitlines()) if l and not _PREAMBLE.match(l)]
            if not lines:
                raise ParseError("empty output")
            found = lines[0], ""
    instruction, reason = _clean(found[0]), _clean(found[1])
    if not instruction:
        raise ParseError("empty instruction")
    if _PLACEHOLDER.search(instruction):
        raise ParseError("template placeholder echoed")
    if _REFUSAL.match(instruction):
        raise ParseError("rewriter refused")
    return instruction, reason


def first_line(text: str) -> str:
    """A completion-style rewrite: the first non-empty line, cut where the model starts a new example."""
    line = next((l for l in (_clean(x) for x in text.splitlines()) if l), "")
    line = re.split(r"\b(?:Question|Alarming|Merged|A|B):", line)[0].strip()
    if not line:
        raise ParseError("empty output")
    if _REFUSAL.match(line):
        raise ParseError("rewriter refused")
    return line
