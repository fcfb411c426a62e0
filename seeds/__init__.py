"""Seed instructions for the search: the packaged set and readers for public over-refusal benchmarks."""

from evoprompt.seeds.loaders import Seed, load_seeds, set_name

__all__ = ["Seed", "load_seeds", "set_name"]
