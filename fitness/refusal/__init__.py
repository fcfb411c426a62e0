"""Refusal judges behind one interface (base.RefusalJudge), chosen by name."""
from __future__ import annotations

from evoprompt.errors import unknown

from .base import RefusalJudge
from .phrases import AnchoredPhraseJudge, SubstringPhraseJudge


JUDGES = ("phrases", "phrases-substring", "classifier", "llm", "hf-classifier")


def make_judge(name: str, phrases=None, embedder=None, backend=None, model=None) -> RefusalJudge:
    """backend: what the `llm` judge runs on; model: the weights of `classifier` (default: shipped) or `hf-classifier`."""
    if name == "phrases":
        return AnchoredPhraseJudge(phrases) if phrases else AnchoredPhraseJudge()
    if name == "phrases-substring":
        return SubstringPhraseJudge(phrases) if phrases else SubstringPhraseJudge()
    if name == "classifier":
        from .classifier import EmbeddingRefusalClassifier, SHIPPED

        return EmbeddingRefusalClassifier.load(model or SHIPPED, embedder=embedder)
    if name == "llm":
        from .llm_judge import LLMRefusalJudge

        return LLMRefusalJudge(backend)
    if name == "hf-classifier":
        from .hf_classifier import HFClassifierJudge

        return HFClassifierJudge(model)
    raise unknown("refusal judge", name, JUDGES)
