"""Refusal judges: p(refusal | x, y) for a batch of (instruction, response) pairs."""
from __future__ import annotations

from typing import Protocol, Sequence


class RefusalJudge(Protocol):
    name: str

    def prob(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        """Probability that each response refuses its instruction (full or partial refusal)."""
        ...
