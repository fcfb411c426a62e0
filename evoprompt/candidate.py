"""A candidate instruction as a DEAP individual: a JSON-ready dict with a DEAP fitness attached."""
from __future__ import annotations

from deap import base, creator

if not hasattr(creator, "RefusalFitness"):
    creator.create("RefusalFitness", base.Fitness, weights=(1.0,))
    creator.create("Candidate", dict, fitness=creator.RefusalFitness)


def make_candidate(**fields) -> "creator.Candidate":
    """Fields: id, text, reason, lineage, generation, operator, parents, chain, gate, score."""
    c = creator.Candidate(fields)
    if c.get("score"):
        c.fitness.values = (c["score"]["fitness"],)
    return c


def set_score(c, score: dict) -> None:
    c["score"] = score
    c.fitness.values = (score["fitness"],)
