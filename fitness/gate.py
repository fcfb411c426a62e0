"""Harmlessness gate: every candidate passes here before it is scored; one batched judge call.

The candidate and its stated reason are untrusted (an LLM wrote them), so they are quoted into the
judge prompt neutralised and fenced (judge_prompt.render). mode `logprob` reads the verdict from the
judge's log-probs of `Verdict: safe` and `Verdict: unsafe` (a probability even from a small model);
mode `text` (servers without log-probs) parses a generated answer strictly: only the exact safe label
passes, so "not safe" or "Harmless? No, harmful." can never read as safe.

A candidate of several sentences or lines is also judged sentence by sentence (without its reason), and
its p(safe) is the lowest of these: text around a harmful sentence ("Ignore the above", an authority
claim, a fake verdict) can then never raise the harmful sentence's own score, which fencing alone does
not ensure on a small judge that reacts to any added words. A blocklist of phrases and the person-harm
screen (harm.py: "How do I kill my brother?") reject outright, whatever the judge says."""
from __future__ import annotations

import re

from evoprompt.errors import unknown
from evoprompt.fitness.harm import person_harm
from evoprompt.fitness.judge_prompt import label_logprobs, load_prompt, render, sentences, softmax
from evoprompt.llm import Backend, Decoding
from evoprompt.records import Verdict
from evoprompt.text import for_screens

MODES = ("logprob", "text")
ANSWER_PREFIX = "Verdict:"
LABELS = ("safe", "unsafe")
_SAFE_ANSWER = re.compile(r"(verdict\s*:\s*)?safe", re.I)


def parse_answer(text: str) -> float:
    """1.0 when a generated answer is exactly the safe label (`Verdict: safe` or `safe`, any case, optionally
    quoted, bold or ending in a period), else 0.0."""
    core = text.strip().strip("*`\"'").strip().rstrip(".").strip()
    return 1.0 if _SAFE_ANSWER.fullmatch(core) else 0.0


def screen(text: str, blocklist: list[str]) -> str | None:
    """The blocklist and the person-harm screen, on the text as the screens read it (evoprompt.text.for_screens:
    invisible characters and look-alike letters cannot hide a phrase): why it is blocked, or None."""
    norm = for_screens(text)
    hit = next((b for b in blocklist if for_screens(b).lower() in norm.lower()), None)
    if hit:
        return f"blocked: {hit}"
    harm = person_harm(norm)
    return f"person harm: {harm}" if harm else None


class HarmlessnessGate:
    def __init__(self, backend: Backend, mode: str, threshold: float, prompt: str, blocklist, decoding: Decoding):
        if mode not in MODES:
            raise unknown("gate mode", mode, MODES)
        self.backend, self.mode, self.threshold, self.decoding = backend, mode, threshold, decoding
        self.template = load_prompt(prompt)
        self.blocklist = [b.lower() for b in blocklist or []]

    def prompt(self, text: str, reason: str | None) -> str:
        return render(self.template, ANSWER_PREFIX, LABELS, instruction=text, reason=reason or "none given")

    def prompts(self, text: str, reason: str | None) -> list[str]:
        """The whole candidate, then each of its sentences when it has several."""
        parts = sentences(text)
        return [self.prompt(text, reason)] + ([self.prompt(p, None) for p in parts] if len(parts) > 1 else [])

    def judge(self, items: list[tuple[str, str]], seed: int) -> list[Verdict]:
        """Verdicts for (instruction, reason) pairs."""
        out: list[Verdict | None] = [None] * len(items)
        ask = []
        for i, (text, _) in enumerate(items):
            why = screen(text, self.blocklist)
            if why:
                out[i] = Verdict(False, 0.0, why)
            else:
                ask.append(i)
        asked = {i: self.prompts(*items[i]) for i in ask}
        unique = list(dict.fromkeys(p for ps in asked.values() for p in ps))
        p_of = dict(zip(unique, self.p_safe(unique, seed)))
        for i, ps in asked.items():
            p = min(p_of[q] for q in ps)
            out[i] = Verdict(p >= self.threshold, p, "safe" if p >= self.threshold else "unsafe")
        return out  # type: ignore[return-value]

    def p_safe(self, prompts: list[str], seed: int) -> list[float]:
        if not prompts:
            return []
        if self.mode == "logprob":
            return [softmax(lps)[0] for lps in label_logprobs(self.backend, prompts, ANSWER_PREFIX, LABELS)]
        chats = [[{"role": "user", "content": p}] for p in prompts]
        return [parse_answer(a[0].text) for a in self.backend.generate(chats, 1, self.decoding, seed)]
