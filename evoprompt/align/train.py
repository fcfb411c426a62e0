"""LoRA training with TRL: SFTTrainer and DPOTrainer on one peft adapter; DPO's reference is the model with the
adapter switched off, so no second copy of the weights is loaded.

Each stage checkpoints under RUN_DIR/checkpoints/STAGE every `save_steps` and saves its finished adapter to
RUN_DIR/stages/STAGE; a rerun skips finished stages and resumes an unfinished one from its last checkpoint."""
from __future__ import annotations

import gc
from pathlib import Path

from evoprompt.faults import kill_point
from evoprompt.schema import AlignSettings, StageSettings


def use_bf16(torch, device: str) -> bool:
    """bf16 mixed precision where the hardware trains faster in it: bf16 GPUs and CPUs with AMX (TRL's default
    would take it on any CPU, where it runs about 2.5x slower than float32 on chips without bf16 units, and
    1.15x slower on chips with AVX512-BF16 but no AMX)."""
    from evoprompt.llm.hf import cpu_has_amx

    return device.startswith("cuda") and torch.cuda.is_bf16_supported() or device == "cpu" and cpu_has_amx()


def last_checkpoint(folder: Path) -> str | None:
    cps = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if folder.is_dir() else []
    return str(cps[-1]) if cps else None


def train_stage(stage: str, model_path: str, init_adapter: str | None, rows: list[dict], s: StageSettings,
                a: AlignSettings, run_dir: Path, seed: int, progress, resume: str | None) -> tuple[Path, list[dict]]:
    """Trains one stage (sft or dpo), from checkpoint `resume` if given, and returns (adapter folder, the
    trainer's log history)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from transformers.utils import logging as hf_logging
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    hf_logging.disable_progress_bar()
    out = run_dir / "stages" / stage
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    bf16 = use_bf16(torch, device)
    # an 8B target in float32 would need 32 GB before training starts; LoRA trains fine on bf16 weights on a GPU
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch.bfloat16 if bf16 and device == "cuda" else torch.float32)
    peft_config = None
    if init_adapter:  # sft+dpo: DPO continues the SFT adapter
        model = PeftModel.from_pretrained(model, init_adapter, is_trainable=True)
    else:
        peft_config = LoraConfig(r=a.lora.r, lora_alpha=a.lora.alpha, lora_dropout=a.lora.dropout,
                                 target_modules=a.lora.target_modules, task_type="CAUSAL_LM")
    common = dict(output_dir=str(run_dir / "checkpoints" / stage), max_steps=s.max_steps,
                  per_device_train_batch_size=s.batch_size, gradient_accumulation_steps=s.grad_accum,
                  learning_rate=s.learning_rate, lr_scheduler_type="linear", warmup_steps=0, logging_steps=1,
                  save_steps=a.save_steps, save_total_limit=2, report_to=[], seed=seed, data_seed=seed,
                  bf16=bf16, use_cpu=device == "cpu", max_length=a.max_length,
                  gradient_checkpointing=a.gradient_checkpointing, disable_tqdm=True, dataloader_num_workers=0)
    data = Dataset.from_list(rows)
    if stage == "sft":
        trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=data,
                             processing_class=tok, peft_config=peft_config, callbacks=[progress])
    else:
        trainer = DPOTrainer(model=model, args=DPOConfig(**common, beta=s.beta, loss_type=[s.loss_type]),
                             train_dataset=data, processing_class=tok, peft_config=peft_config, callbacks=[progress])
    trainer.remove_callback(PrinterCallback)  # the progress callback prints one line per step instead
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(out))
    history = trainer.state.log_history
    del trainer, model
    gc.collect()  # the evaluation engines load next: on a GPU they need this memory back
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out, history


def progress_callback(console, stage: str, total: int):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                extra = f", margin {logs['rewards/margins']:.3f}" if "rewards/margins" in logs else ""
                console.print(f"{stage}: step {state.global_step}/{total}, loss {logs['loss']:.4f}{extra}")
                kill_point(f"align {stage} step {state.global_step}")

    return Progress()
