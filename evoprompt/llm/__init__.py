"""Model backends behind one protocol (base.Backend), chosen by name in each role's config."""
from __future__ import annotations

import importlib

from ..errors import unknown
from .base import Backend, BackendError, Chat, Decoding, Sample, completion, raw_document


# name -> module:class; modules import their heavy libraries (torch, vllm, openai) only when constructed
BACKENDS: dict[str, str] = {"hf": "hf:HFBackend", "vllm": "vllm_backend:VLLMBackend",
                            "openai": "openai_backend:OpenAIBackend"}


def backend_class(name: str) -> type:
    if name not in BACKENDS:
        raise unknown("backend", name, BACKENDS)
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
_ENGINES: dict[tuple, Backend] = {}
# keys of a role's config that configure the role, not the engine it runs on
ROLE_ONLY = ("decoding", "system_prompt", "prompt", "mode", "threshold", "blocklist")


def engine_key(role_cfg: dict) -> tuple:
    """Roles whose backend and model settings agree share one engine, built with the first role's batch size."""
    load = {k: v for k, v in role_cfg.items() if k not in ROLE_ONLY and k != "batch_size"}
    return tuple(sorted((k, repr(v)) for k, v in load.items()))


def get_backend(role_cfg: dict) -> Backend:
    """One engine per model per process, shared between roles."""
    name = role_cfg.get("backend", "hf")
    if name not in BACKENDS:
        raise unknown("backend", name, BACKENDS)
    key = engine_key(role_cfg)
    if key not in _ENGINES:
        kw = {k: v for k, v in role_cfg.items() if k not in ROLE_ONLY and k != "backend"}
        _ENGINES[key] = backend_class(name)(**kw)
    return _ENGINES[key]


__all__ = ["Backend", "BackendError", "Chat", "Decoding", "Sample", "completion", "raw_document", "BACKENDS", "backend_class", "get_backend"]
