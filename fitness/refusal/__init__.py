"""Refusal judges behind one interface (base.RefusalJudge), chosen by name."""
from __future__ import annotations

from evoprompt.errors import unknown

from .base import RefusalJudge
from .phrases import AnchoredPhraseJudge, SubstringPhraseJudge


def make_judge(name: str, phrases=None, embedder=None) -> RefusalJudge:
    if name == "phrases":
        return AnchoredPhraseJudge(phrases) if phrases else AnchoredPhraseJudge()
    if name == "phrases-substring":
        return SubstringPhraseJudge(phrases) if phrases else SubstringPhraseJudge()
    if name == "classifier":
        from .classifier import EmbeddingRefusalClassifier, SHIPPED

        return EmbeddingRefusalClassifier.load(SHIPPED, embedder=embedder)
    raise unknown("refusal judge", name, ("phrases", "phrases-substring", "classifier"))
