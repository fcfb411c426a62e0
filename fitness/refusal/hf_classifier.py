"""An HF sequence classifier as refusal judge (e.g. protectai/distilroberta-base-rejection-v1,
NousResearch/Minos-v1), for users who have the weights locally. The refusal probability is the sum over
the labels whose name says refusal/rejection."""
from __future__ import annotations

import re
from collections.abc import Sequence

from evoprompt.errors import UserError
from evoprompt.fitness.refusal.base import JudgeParts
from evoprompt.llm.base import BackendError

_REFUSAL_LABEL = re.compile(r"refus|reject", re.I)


class HFClassifierJudge:
    """An HF sequence classifier with a refusal label, from a local folder (e.g. distilroberta-base-rejection-v1)."""
    name = "hf-classifier"
    NEEDS = ("model",)

    @classmethod
    def from_parts(cls, parts: JudgeParts) -> HFClassifierJudge:
        if not parts.model:
            raise UserError("the hf-classifier refusal judge needs its weights: set the judge's model to a folder")
        return cls(parts.model)

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 32, pair_input: bool = False):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tok = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSequenceClassification.from_pretrained(model).to(device).eval()
        except (OSError, ValueError) as e:
            raise BackendError(f"cannot load refusal classifier '{model}': {str(e).splitlines()[0]}") from None
        labels = self.model.config.id2label
        self.refusal_ids = [i for i, name in labels.items() if _REFUSAL_LABEL.search(str(name))]
        if not self.refusal_ids:
            raise BackendError(f"classifier '{model}' has no refusal label among {sorted(labels.values())}")
        self.torch, self.device, self.batch_size, self.pair_input = torch, device, batch_size, pair_input

    def prob(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(responses), self.batch_size):
            ys = list(responses[i:i + self.batch_size])
            xs = list(instructions[i:i + self.batch_size]) if self.pair_input else None
            enc = self.tok(*(([xs, ys]) if xs else [ys]), padding=True, truncation=True, return_tensors="pt")
            with self.torch.no_grad():
                p = self.model(**enc.to(self.device)).logits.softmax(-1)
            out += p[:, self.refusal_ids].sum(-1).tolist()
        return out
