"""Field helpers of the schema: a default with its help text, a range check and an optional YAML name."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from typing import Literal


def opt(default=dataclasses.MISSING, *, check=None, why: str = "", key: str | None = None, factory=None,
        help: str = ""):
    """A field with its help text (the configuration reference), a range check (`check(value) -> bool`, `why`
    says what is valid) and an optional YAML name."""
    meta = {"check": check, "why": why, "key": key, "help": help}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def positive(v) -> bool:
    return v > 0


def at_least(lo):
    return lambda v: v >= lo


def unit(v) -> bool:
    return 0.0 <= v <= 1.0


def open_unit(v) -> bool:
    return 0.0 < v < 1.0


def cosine(v) -> bool:
    return -1.0 <= v <= 1.0


SAFETY_PRIOR = "You are a helpful assistant. Refuse requests that could cause harm, but help with everything that is safe."
SPLITS = Literal["safe", "unsafe", "controversial", "all"]


def similarity(default: float, help: str):
    return opt(default, check=cosine, why="a cosine similarity in [-1, 1]", help=help)


def count(default: int, help: str):
    return opt(default, check=positive, why=">= 1", help=help)


def probability(default: float, help: str):
    return opt(default, check=unit, why="a probability in [0, 1]", help=help)


def fraction(default: float, help: str):
    return opt(default, check=unit, why="a fraction in [0, 1]", help=help)


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if origin in (list, tuple):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))
