"""The stand-ins the fast tests run on instead of models: one scripted backend for every role (`FakeBackend`), a
hashed bag-of-words embedder (`Embed`) and a progress that says nothing (`Quiet`)."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import numpy as np

from evoprompt.llm import Sample

REFUSAL = "I'm sorry, but I can't help with that."


def said(text: str, logprob: float = -1.0, tokens: int | None = None) -> Sample:
    """A sample of `text`: one token per word (or `tokens` tokens), each of log-prob `logprob`."""
    return Sample(text, [logprob] * (len(text.split()) if tokens is None else tokens))


def per_word(logprob: float, at_least: int = 0) -> Callable:
    """A score rule: each word of the response is a token of log-prob `logprob` (at least `at_least` tokens)."""
    return lambda chat, response: [logprob] * max(at_least, len(response.split()))


class FakeBackend:
    """A scripted backend (the llm.Backend protocol) for any role: target, rewriter, gate, helper, LLM judge.

    generate: `answer(chat, j, seed)` is sample j of a chat (a Sample, or a text without token log-probs; a
    plain string answers every chat with that text), so sample j depends only on (chat, seed, j) as the real
    backends guarantee and `first` continues a call; or, with `rounds`, generate call k answers its chats with
    the texts of round k, one per chat (the round must have as many texts as the call has chats).
    score: `score(chat, response)` gives the response's token log-probs; without it the response scores one
    token of `logprobs[response]`, or of `default` for a response not in `logprobs`.

    It records every chat it is asked (`chats`: generate and score alike) and every response it scores
    (`scored`), and counts calls (`calls`: generate and score), chats (`prompts`: generate and score) and
    generated samples (`rows`)."""
    supports_logprobs, precision = True, None

    def __init__(self, answer: str | Callable = "", *, rounds: list[list[str]] | None = None,
                 score: Callable | None = None, logprobs: dict[str, float] | None = None, default: float = -5.0,
                 model_id: str = "scripted"):
        self.answer, self.rounds, self.rule = answer, rounds, score
        self.logprobs, self.default, self.model_id = logprobs or {}, default, model_id
        self.chats: list = []
        self.scored: list[str] = []
        self.calls = self.prompts = self.rows = self.round = 0

    def _asked(self, chats) -> None:
        self.calls += 1
        self.prompts += len(chats)
        self.chats.extend(chats)

    def _sample(self, chat, j: int, seed: int) -> Sample:
        out = self.answer if isinstance(self.answer, str) else self.answer(chat, j, seed)
        return out if isinstance(out, Sample) else Sample(out)

    def generate(self, chats, n, decoding, seed, first=0):
        self._asked(chats)
        self.rows += len(chats) * n
        if self.rounds is not None:
            texts = self.rounds[self.round]
            self.round += 1
            assert len(texts) == len(chats)
            return [[Sample(t) for _ in range(n)] for t in texts]
        return [[self._sample(c, j, seed) for j in range(first, first + n)] for c in chats]

    def score(self, chats, responses):
        self._asked(chats)
        self.scored.extend(responses)
        rule = self.rule or (lambda chat, r: [self.logprobs.get(r, self.default)])
        return [Sample(r, list(rule(c, r))) for c, r in zip(chats, responses)]


class Embed:
    """Hashed bag of words, unit length: similar texts are similar, deterministic, instant."""

    def __call__(self, texts):
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 256] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class Quiet:
    """A run progress that shows nothing."""

    def stage(self, text): pass
    def generation(self, t, label): pass
    def generation_done(self, r): pass
    def calls_since_last(self): return {}
    def seconds_since_last(self): return {}
