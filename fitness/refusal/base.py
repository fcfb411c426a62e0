"""Refusal judges: p(refusal | x, y) for a batch of (instruction, response) pairs.

Every judge class is built the same way, `from_parts(JudgeParts)`, and declares in `NEEDS` which parts it uses
(roles.Roles builds only those: the embedder, an LLM backend); the registry (evoprompt/registry.py) names them."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

PARTS = ("phrases", "embedder", "llm", "model")


@dataclass
class JudgeParts:
    phrases: Sequence[str] | None = None   # phrases, phrases-substring: the phrase list (None = built in)
    embedder: object = None                # classifier judges: sentence embeddings
    llm: object = None                     # llm: the backend it runs on
    model: str | None = None               # classifier: .npz (None = shipped); hf-classifier: a model folder


class RefusalJudge(Protocol):
    name: str
    NEEDS: tuple[str, ...]

    @classmethod
    def from_parts(cls, parts: JudgeParts) -> RefusalJudge: ...

    def prob(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        """Probability that each response refuses its instruction (full or partial refusal)."""
        ...
