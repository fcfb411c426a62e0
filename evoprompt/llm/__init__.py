"""Model backends behind one protocol (base.Backend), chosen by name in each role's config."""
from __future__ import annotations

import importlib

from evoprompt.errors import unknown
from evoprompt.llm.base import Backend, BackendError, Chat, Decoding, Sample, completion, raw_document


# name -> module:class; modules import their heavy libraries (torch, vllm, openai) only when constructed
BACKENDS: dict[str, str] = {"hf": "hf:HFBackend", "vllm": "vllm_backend:VLLMBackend",
                            "openai": "openai_backend:OpenAIBackend", "ray": "ray_pool:RayPoolBackend"}


def backend_class(name: str) -> type:
    if name not in BACKENDS:
        raise unknown("backend", name, BACKENDS)
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
_ENGINES: dict[tuple, Backend] = {}


def engine_key(engine_cfg: dict) -> tuple:
    """Roles whose backend and model settings agree share one engine, built with the first role's batch size."""
    return tuple(sorted((k, repr(v)) for k, v in engine_cfg.items() if k != "batch_size"))


def get_backend(engine_cfg: dict) -> Backend:
    """One engine per model per process, shared between roles; engine_cfg: backend, model and the backend's
    constructor keys (RoleConfig.backend_config)."""
    name = engine_cfg.get("backend", "hf")
    if name not in BACKENDS:
        raise unknown("backend", name, BACKENDS)
    key = engine_key(engine_cfg)
    if key not in _ENGINES:
        _ENGINES[key] = backend_class(name)(**{k: v for k, v in engine_cfg.items() if k != "backend"})
    return _ENGINES[key]


def close_engines() -> None:
    """Shuts every engine down while the interpreter is still whole. Left to finalizers at exit, two vLLM engines'
    teardown can abort the process ("terminate called without an active exception") after a run has finished."""
    for engine in reversed(list(_ENGINES.values())):
        close = getattr(engine, "close", None)
        if close:
            close()
    _ENGINES.clear()


__all__ = ["Backend", "BackendError", "Chat", "Decoding", "Sample", "completion", "raw_document", "BACKENDS", "backend_class", "get_backend", "close_engines"]
