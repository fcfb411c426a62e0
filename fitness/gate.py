"""Harmlessness gate: every candidate passes here before it is scored; one batched judge call.

mode `logprob` compares log p("safe") and log p("unsafe") as the judge's answer (a probability even
from a small model); mode `text` parses a generated word (for servers without log-probs). A blocklist
of phrases rejects outright, whatever the judge says."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from evoprompt.errors import UserError, unknown
from evoprompt.llm import Backend, Decoding

MODES = ("logprob", "text")
_PROMPTS = Path(__file__).parent / "prompts"


@dataclass
class Verdict:
    safe: bool
    p_safe: float
    verdict: str       # "safe" | "unsafe" | "blocked: <phrase>"

    def to_json(self) -> dict:
        return {"safe": self.safe, "p_safe": round(self.p_safe, 4), "verdict": self.verdict}


def load_prompt(name: str) -> str:
    path = Path(name) if Path(name).exists() else _PROMPTS / name
    if not path.exists():
        raise UserError(f"gate prompt not found: {name} (looked in {_PROMPTS})")
    return path.read_text(encoding="utf-8")


class HarmlessnessGate:
    def __init__(self, backend: Backend, mode: str, threshold: float, prompt: str, blocklist, decoding: Decoding):
        if mode not in MODES:
            raise unknown("gate mode", mode, MODES)
        self.backend, self.mode, self.threshold, self.decoding = backend, mode, threshold, decoding
        self.template = load_prompt(prompt)
        self.blocklist = [b.lower() for b in blocklist or []]

    def judge(self, items: list[tuple[str, str]], seed: int) -> list[Verdict]:
        """Verdicts for (instruction, reason) pairs."""
        out: list[Verdict | None] = [None] * len(items)
        ask = []
        for i, (text, _) in enumerate(items):
            hit = next((b for b in self.blocklist if b in text.lower()), None)
            if hit:
                out[i] = Verdict(False, 0.0, f"blocked: {hit}")
            else:
                ask.append(i)
        chats = [[{"role": "user", "content": self.template.format(instruction=items[i][0], reason=items[i][1] or "none given")}]
                 for i in ask]
        for i, p in zip(ask, self._p_safe(chats, seed) if chats else []):
            out[i] = Verdict(p >= self.threshold, p, "safe" if p >= self.threshold else "unsafe")
        return out  # type: ignore[return-value]

    def _p_safe(self, chats, seed: int) -> list[float]:
        if self.mode == "logprob":
            scored = self.backend.score(chats + chats, ["safe"] * len(chats) + ["unsafe"] * len(chats))
            n = len(chats)
            return [1.0 / (1.0 + math.exp(scored[n + i].logprob - scored[i].logprob)) for i in range(n)]
        answers = self.backend.generate(chats, 1, self.decoding, seed)
        return [_parse_word(a[0].text) for a in answers]


def _parse_word(text: str) -> float:
    m = re.search(r"\b(unsafe|safe|harmful|harmless)\b", text.lower())
    return 1.0 if m and m.group(1) in ("safe", "harmless") else 0.0
