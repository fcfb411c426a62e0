"""A LoRA adapter folded into its base model and saved as an ordinary HF folder, so HF and vLLM load the result at
full speed with no per-request adapter. The backend layer needs it (the guarded target is merged on first use), as
do training (`align merge=true`) and the builders (build-guarded): it lives here, below all of them."""
from __future__ import annotations

import shutil
from pathlib import Path


def merge(model_path: str, adapter: Path, out: Path) -> None:
    """The base weights with the adapter folded in, saved as an ordinary HF model folder (atomically: a folder
    that is there is whole)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32), str(adapter))
    tmp = out.with_name(out.name + ".tmp")
    model.merge_and_unload().save_pretrained(tmp)
    AutoTokenizer.from_pretrained(model_path).save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
