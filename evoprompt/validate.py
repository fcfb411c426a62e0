"""Typed configuration, validated once at the edge, before any model loads.

Hydra composes the YAML (evoprompt/conf, experiments/) and the command line; `typed(RunConfig, dict)` then turns
the result into the schema's dataclasses (evoprompt/schema/). An unknown key, a wrong type or an out-of-range value
stops with one line naming the key and what is valid. A model role's engine keys (dtype, batch_size, base_url, ...)
are checked against the constructor of the backend the role names, so no backend swallows a typo; judges,
backends and strategies are checked against their registries."""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

from evoprompt.align.data import resolve_path
from evoprompt.errors import UserError, unknown
from evoprompt.llm import backend_class, engine_keys
from evoprompt.operators.choose import StrategyChooser
from evoprompt.presets import target_preset
from evoprompt.registry import BACKENDS, JUDGES
from evoprompt.schema import COMMAND_SCHEMAS, AlignConfig, MitigateConfig, RefusalJudgeConfig, RoleConfig, RunConfig
from evoprompt.schema.fields import _describe


def _coerce(tp, v, key: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(inner[0], v, key)
        for tp_ in inner:
            try:
                return _coerce(tp_, v, key)
            except UserError:
                pass
        raise UserError(f"{key} must be {' or '.join(_describe(a) for a in inner)}, got {v!r}")
    if origin is Literal:
        if v not in args:
            raise UserError(f"{key}: unknown value {v!r}; valid: {', '.join(sorted(map(str, args)))}")
        return v
    if dataclasses.is_dataclass(tp):
        if tp is RefusalJudgeConfig and isinstance(v, str):  # `fitness.judge=phrases` names the judge alone
            v = {"name": v}
        out = typed(tp, v, key)
        if tp is RefusalJudgeConfig and out.name not in JUDGES:
            raise unknown(f"refusal judge ({key}.name)", out.name, JUDGES)
        return out
    if tp is bool:
        if not isinstance(v, bool):
            raise UserError(f"{key} must be true or false, got {v!r}")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise UserError(f"{key} must be a whole number, got {v!r}")
        return v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserError(f"{key} must be a number, got {v!r}")
        return float(v)
    if tp is str:
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise UserError(f"{key} must be a string, got {v!r}")
        return str(v)
    if origin is list:
        if not isinstance(v, (list, tuple)):
            raise UserError(f"{key} must be a list, got {v!r}")
        return [_coerce(args[0], x, f"{key}[{i}]") for i, x in enumerate(v)] if args else list(v)
    if origin is dict or tp is dict:
        if not isinstance(v, dict):
            raise UserError(f"{key} must be a mapping, got {v!r}")
        return {k: _coerce(args[1], x, f"{key}.{k}") for k, x in v.items()} if args else dict(v)
    return v


_SIMPLE = {"int": int, "float": float, "str": str, "bool": bool}


def _role_engine(cls, data: dict, where: str) -> dict:
    """Split a role's mapping into its typed keys and the engine keys its backend's constructor takes."""
    own = {f.metadata.get("key") or f.name for f in dataclasses.fields(cls)} - {"engine"}
    name = data.get("backend", "hf")
    if name not in BACKENDS:
        raise UserError(f"{where}.backend: unknown backend {name!r}; valid: {', '.join(sorted(BACKENDS))}")
    params = engine_keys(name)
    allowed = list(params)
    engine = {}
    for k, v in data.items():
        if k in own:
            continue
        if k not in allowed:
            raise UserError(f"unknown key '{where}.{k}' for the {name} backend; valid: "
                            f"{', '.join(sorted(own - {'engine'}) + allowed)}")
        hint = _SIMPLE.get(str(params[k]).replace(" | None", ""))
        engine[k] = v if hint is None or (v is None and "None" in str(params[k])) else _coerce(hint, v, f"{where}.{k}")
    return engine


def typed(cls, data, where: str = ""):
    """Build dataclass `cls` from a plain mapping; every problem is one UserError naming its key."""
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.metadata.get("key") or f.name: f for f in fields}
    extra: dict = {}
    if issubclass(cls, RoleConfig):
        extra = _role_engine(cls, data, where)
    kw: dict[str, Any] = {}
    for k, v in data.items():
        if k in extra:
            continue
        f = names.get(k)
        if f is None or f.name == "engine":
            raise UserError(f"unknown key '{where + '.' if where else ''}{k}'; valid: "
                            f"{', '.join(n for n in names if n != 'engine')}")
        full = f"{where}.{k}" if where else k
        value = _coerce(hints[f.name], v, full)
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise UserError(f"{full} must be {f.metadata['why']}, got {v!r}")
        kw[f.name] = value
    if extra:
        kw["engine"] = extra
    return cls(**kw)


def loose(cls, data, where: str):
    """A stored configuration (run.json's `config`) as the dataclass: keys this evoprompt does not know are ignored
    (an older or newer run), a key under its YAML name or its field name is read, a value of the wrong type is one
    UserError naming it."""
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a mapping, got {type(data).__name__}")
    hints, kw = typing.get_type_hints(cls), {}
    for f in dataclasses.fields(cls):
        key = next((k for k in (f.metadata.get("key"), f.name) if k and k in data), None)
        if key is None:
            continue
        v, full = data[key], f"{where}.{key}"
        if f.name == "engine":
            kw["engine"] = dict(v) if isinstance(v, dict) else {}
        elif dataclasses.is_dataclass(hints[f.name]):
            kw[f.name] = loose(hints[f.name], {"name": v} if isinstance(v, str) else v, full)
        else:
            kw[f.name] = _coerce(hints[f.name], v, full)
    return cls(**kw)


def role_mapping(role: RoleConfig) -> dict:
    """A typed role back as the mapping it was typed from."""
    return {"backend": role.backend, "model": role.model, "decoding": dataclasses.asdict(role.decoding),
            "system_prompt": role.system_prompt, **role.engine}


def target_label(role: dict) -> str:
    model = str(role.get("model", "embedded")).rstrip("/").rsplit("/", 1)[-1]
    return f"{role.get('backend', 'hf')}:{model}" + (" +system" if role.get("system_prompt") else "")


def target_pool(entries: list, base: dict, where: str) -> list[tuple[str, RoleConfig]]:
    """(name, role) per entry of a target list: a preset name (evoprompt/conf/target, an experiment's target, a
    model or adapter folder) or a mapping whose keys override `base` (`name:` sets the label). An entry that
    changes the backend does not inherit `base`'s engine keys, which belong to the other backend."""
    out: list[tuple[str, RoleConfig]] = []
    for i, e in enumerate(entries):
        if isinstance(e, str):
            try:
                name, mapping = e, target_preset(e)
            except UserError as err:
                raise UserError(f"{where}[{i}]: {err}") from None
        elif isinstance(e, dict):
            e = dict(e)
            name = e.pop("name", None)
            inherit = base if e.get("backend", base.get("backend", "hf")) == base.get("backend", "hf") else \
                {k: v for k, v in base.items() if k in ("model", "decoding", "system_prompt")}
            mapping = {**inherit, **e, "decoding": {**inherit.get("decoding", {}), **(e.get("decoding") or {})}}
        else:
            raise UserError(f"{where}[{i}] must be a preset name or a mapping, got {e!r}")
        role = typed(RoleConfig, mapping, f"{where}[{i}]")
        name = str(name or target_label(mapping))
        if name in (n for n, _ in out):
            name = f"{name}#{i}"
        out.append((name, role))
    return out


def run_targets(cfg: RunConfig) -> list[tuple[str, RoleConfig]]:
    """The run's targets: fitness.targets, or `target` alone (named as a one-entry list equal to it would be)."""
    return target_pool(cfg.fitness.targets or [{}], role_mapping(cfg.target), "fitness.targets")


def target_roles(names: list[str]) -> list[str]:
    """How a run's targets appear among its roles (call counts, `check`): `target` alone, `target NAME` each."""
    return ["target"] if len(names) == 1 else [f"target {n}" for n in names]


def load_run_config(container: dict) -> RunConfig:
    cfg = typed(RunConfig, container)
    pool = run_targets(cfg)
    if cfg.export.min_targets_refusing > len(pool):
        raise UserError(f"export.min_targets_refusing ({cfg.export.min_targets_refusing}) exceeds the number of "
                        f"targets ({len(pool)}: {', '.join(n for n, _ in pool)})")
    if cfg.rewriter.style == "completion" and not backend_class(cfg.rewriter.backend).CAPABILITIES.raw_completion:
        raise UserError(f"rewriter.style=completion needs a backend that continues raw text; valid: "
                        f"{', '.join(n for n in BACKENDS if backend_class(n).CAPABILITIES.raw_completion)}; "
                        f"or use rewriter.style=chat with the {cfg.rewriter.backend} rewriter")
    s = cfg.search
    if s.tau_f > s.tau_0:
        raise UserError(f"search.tau_f ({s.tau_f}) must not exceed search.tau_0 ({s.tau_0})")
    return cfg


def validate_run(container: dict) -> RunConfig:
    """A run's (and check's) configuration, typed; every error surfaces here, before any model loads."""
    cfg = load_run_config(container)
    StrategyChooser(cfg.search.strategy, cfg.search.strategy_weights)
    return cfg


def validate_align(c: AlignConfig) -> None:
    local = [n for n in BACKENDS if backend_class(n).CAPABILITIES.local_weights]
    if c.target.backend not in local:
        raise UserError(f"target.backend={c.target.backend}: align trains the target's weights, so it must be a "
                        f"local model; valid: {', '.join(local)}")
    for i, s in enumerate(c.align.eval_sets):
        if s.path.startswith("data:"):
            continue  # a public set: skipped with a note when absent
        p = resolve_path(s.path)
        if isinstance(p, Path) and not p.is_file():
            raise UserError(f"align.eval_sets[{i}].path: file not found: {p}")


def validate(command: str, container: dict) -> None:
    """The command's configuration, typed and checked before hydra starts the job."""
    if command in ("run", "check"):
        validate_run(container)
    elif command == "align":
        validate_align(load_align_config(container))
    elif command == "mitigate":
        without_run_keys(MitigateConfig, container)
    else:
        typed(COMMAND_SCHEMAS[command], container)


def without_run_keys(cls, container: dict):
    """An experiment preset (`+experiment=`) also sets the run's keys (seeds, rewriter, ...): a command that
    takes the preset's target (align, mitigate) leaves those."""
    own = {f.name for f in dataclasses.fields(cls)}
    run_only = {f.metadata.get("key") or f.name for f in dataclasses.fields(RunConfig)} - own
    return typed(cls, {k: v for k, v in container.items() if k not in run_only})


def load_align_config(container: dict) -> AlignConfig:
    return without_run_keys(AlignConfig, container)
