"""The schema as hydra's base configs, and as the configuration reference (docs/configuration.md, `make docs`)."""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Literal

from evoprompt.schema.commands import COMMAND_SCHEMAS, SCHEMAS
from evoprompt.schema.fields import _describe


def _plain(v):
    if dataclasses.is_dataclass(v):
        return {f.metadata.get("key") or f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)
                if f.name not in ("engine", "hydra")}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def defaults(cls) -> dict:
    """Every default of a command's schema as the mapping hydra composes (YAML key names, no engine keys)."""
    return _plain(cls())


def register_schemas() -> None:
    """Each schema as the config `<name>_schema` that evoprompt/conf/<name>.yaml lists first in its defaults, so
    the dataclass is the only source of defaults and the YAML holds only the embedded default's choices."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, cls in SCHEMAS.items():
        cs.store(name=f"{name}_schema", node=defaults(cls))


def _type_name(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " \\| ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if dataclasses.is_dataclass(tp):
        return "section"
    return _describe(tp)


def _rows(obj, prefix: str = "") -> list[str]:
    hints, out = typing.get_type_hints(type(obj)), []
    for f in dataclasses.fields(obj):
        if f.name in ("engine", "hydra"):
            continue
        key, tp, value = prefix + (f.metadata.get("key") or f.name), hints[f.name], getattr(obj, f.name)
        why = f.metadata.get("why")
        help_ = (f.metadata.get("help", "") + (f" ({why})" if why else "")).replace("|", "\\|")
        if dataclasses.is_dataclass(value):
            out.append(f"| `{key}` | section | | {help_} |")
            out += _rows(value, key + ".")
            continue
        shown = json.dumps(_plain(value), ensure_ascii=False).replace("|", "\\|")
        out.append(f"| `{key}` | {_type_name(tp)} | `{shown if len(shown) <= 60 else shown[:57] + '...'}` | {help_} |")
    return out


def _presets() -> list[str]:
    conf = Path(__file__).parents[1] / "conf"
    lines = ["## Group presets", "", "Chosen in the defaults of a command's YAML (`target: embedded`, `gate: embedded`) "
             "or on the command line (`target=embedded-vllm`); they set these keys of their section over the "
             "schema's defaults.", ""]
    for group in sorted(p for p in conf.iterdir() if p.is_dir()):
        for preset in sorted(group.glob("*.yaml")):
            lines += [f"### `{group.name}={preset.stem}`", "", "```yaml", preset.read_text(encoding="utf-8").strip(),
                      "```", ""]
    return lines


def reference() -> str:
    """docs/configuration.md: every key of every command, its type, default and help, from the schema alone."""
    lines = ["# Configuration reference", "",
             "Generated from `evoprompt/schema/` by `make docs` (a test fails when this file and the schema differ). "
             "Every key is set on the command line as hydra overrides (`key=value`, `section.key=value`); "
             "`+experiment=NAME` applies a preset from `experiments/`, `target=NAME` / `gate=NAME` a group preset "
             "from `evoprompt/conf/`. A model role (`target`, `rewriter`, `gate`, `helper`) also takes its "
             "backend's own keys (hf: `dtype`, `device`, `batch_size`, `adapter`; vllm: `dtype`, "
             "`gpu_memory_utilization`, `max_model_len`, `lora`, ...; openai: `base_url`, `api_key_env`, ...), "
             "added with `+target.KEY=VALUE`. A wrong key, type or range stops the command with one line naming it.", ""]
    for cls in SCHEMAS.values():
        commands = [c for c, k in COMMAND_SCHEMAS.items() if k is cls]
        lines += [f"## {' / '.join(f'`{c}`' for c in commands)}", "", " ".join((cls.__doc__ or "").split("\n\n")[0].split()), "",
                  "| key | type | default | what it does |", "|---|---|---|---|", *_rows(cls()), ""]
    return "\n".join(lines + _presets())


