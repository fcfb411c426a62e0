"""D(x) = 1 - max cosine similarity of x's sentence embedding to the instructions already kept."""
from __future__ import annotations

import numpy as np


class Embedder:
    def __init__(self, model: str, device: str = "auto"):
        from sentence_transformers import SentenceTransformer

        from evoprompt.llm.embedded import resolve_model_path

        self.model = SentenceTransformer(resolve_model_path(model), device=None if device == "auto" else device)

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


def novelty(candidates: np.ndarray, archive: np.ndarray) -> np.ndarray:
    """Rows are unit vectors. With an empty archive every candidate is fully novel."""
    if len(candidates) == 0:
        return np.zeros(0)
    if len(archive) == 0:
        return np.ones(len(candidates))
    return 1.0 - (candidates @ archive.T).max(axis=1).clip(-1.0, 1.0)
