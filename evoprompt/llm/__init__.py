"""Model backends behind one protocol (base.Backend), chosen by name in each role's config (registry.BACKENDS)."""
from __future__ import annotations

import inspect

from evoprompt.llm.base import Backend, BackendError, Capabilities, Chat, Decoding, Sample, completion, raw_document
from evoprompt.registry import BACKENDS, get


def backend_class(name: str) -> type:
    """The class of a registered backend; modules import their heavy libraries (torch, vllm, openai) only when
    a backend is constructed."""
    return get("backend", BACKENDS, name)


def engine_keys(name: str) -> dict[str, str]:
    """The keys a role of this backend takes besides `model` (its constructor's parameters, and those of the
    backend it wraps), each with its annotation as text."""
    cls = backend_class(name)
    params = inspect.signature(cls.__init__).parameters
    keys = {k: str(p.annotation) for k, p in params.items()
            if k not in ("self", "model") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    wrapped = cls.CAPABILITIES.wraps
    return {**(engine_keys(wrapped) if wrapped else {}), **keys}


def describe() -> str:
    """`name: what it is` per backend, for help strings and docs."""
    return "; ".join(f"{n}: {(backend_class(n).__doc__ or '').strip().splitlines()[0]}" for n in BACKENDS)


_ENGINES: dict[tuple, Backend] = {}


def engine_key(engine_cfg: dict) -> tuple:
    """Roles whose backend and model settings agree share one engine, built with the first role's batch size."""
    return tuple(sorted((k, repr(v)) for k, v in engine_cfg.items() if k != "batch_size"))


def get_backend(engine_cfg: dict) -> Backend:
    """One engine per model per process, shared between roles; engine_cfg: backend, model and the backend's
    constructor keys (RoleConfig.backend_config)."""
    cls = backend_class(engine_cfg.get("backend", "hf"))
    key = engine_key(engine_cfg)
    if key not in _ENGINES:
        _ENGINES[key] = cls(**{k: v for k, v in engine_cfg.items() if k != "backend"})
    return _ENGINES[key]


def close_engines() -> None:
    """Shuts every engine down while the interpreter is still whole. Left to finalizers at exit, two vLLM engines'
    teardown can abort the process ("terminate called without an active exception") after a run has finished."""
    for engine in reversed(list(_ENGINES.values())):
        close = getattr(engine, "close", None)
        if close:
            close()
    _ENGINES.clear()


__all__ = ["BACKENDS", "Backend", "BackendError", "Capabilities", "Chat", "Decoding", "Sample", "backend_class",
           "close_engines", "completion", "describe", "engine_keys", "get_backend", "raw_document"]
