"""Mutation: one rewrite request per (lineage, chosen strategy)."""
from __future__ import annotations

from .rewrite import TEMPLATES, RewriteRequest
from .strategies import get_strategy

_MUTATE = (TEMPLATES / "mutate.txt").read_text(encoding="utf-8")


def mutation_request(instruction: str, strategy: str, tag=None) -> RewriteRequest:
    body = _MUTATE.format(strategy=get_strategy(strategy).task, instruction=instruction)
    return RewriteRequest(body, strategy, [instruction], tag)
