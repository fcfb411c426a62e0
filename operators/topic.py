"""Topic drift: a rewrite must stay near its lineage's seed (cosine similarity of sentence embeddings)."""
from __future__ import annotations

from typing import Callable

import numpy as np


class SeedTopic:
    def __init__(self, embed: Callable[[list[str]], np.ndarray], min_similarity: float):
        self.embed, self.min_similarity = embed, min_similarity

    def __call__(self, pairs: list[tuple[str, str]]) -> list[str | None]:
        """(seed, rewrite) pairs -> None to keep the rewrite, or why it is refused."""
        unique = sorted({s for s, _ in pairs})  # a lineage's L rewrites share one seed
        seed_vec = dict(zip(unique, self.embed(unique)))
        texts = self.embed([t for _, t in pairs])
        sims = [float(seed_vec[s] @ v) for (s, _), v in zip(pairs, texts)]
        return [None if s >= self.min_similarity else f"off topic (similarity to seed {s:.2f} < {self.min_similarity})"
                for s in sims]
