"""ELBO scoring throughput of the HF backend on a GPU, against the memory-bandwidth roofline of decoding.

Builds a randomly initialised model with the Llama-3.1-8B configuration in bf16 straight on the device
(nothing is downloaded), wraps it in HFBackend.from_model with the embedded SmolLM2 tokenizer (its ids
are < 128256) and times Scorer (default fitness settings, no embedder) on the first packaged seeds at
several batch sizes, plus the backend's `generate` alone (the decoding part of Scorer). On a GPU the backend
samples with its device-side noise (hf.hash_uniform: no per-row CPU generators, no host copy per step) and
reads the sampled tokens' log-probs back once per call; `--noise generator` times the CPU-generator path.

Roofline: one decoding step reads every weight once (the input embedding only at the rows' tokens) and
each row's KV cache, so a batch of B rows makes at best B tokens per (weight bytes + B * KV bytes per
row) / HBM bandwidth seconds. Reported: measured generated tokens/s divided by that bound.

    python scripts/gpu_elbo_roofline.py --out gpu-roofline.json
    python scripts/gpu_elbo_roofline.py --layers 2 --candidates 2 --K 2 --max-new-tokens 8 --batch-sizes 4  # CPU smoke run

`--rehearse DIR`: the GPU rehearsal of `run +experiment=llama8b`. Random-initialised Llama-3.1-8B- and
Qwen2.5-7B-shaped model folders (evoprompt.llm.memory's shapes, the embedded tokenizer, bf16) are written under
DIR; `check` plans their memory, then the preset runs on them on vLLM (target on the Llama folder; rewriter, gate
and helper on the Qwen one) for `--seeds` seeds and one generation. Printed: per-engine peak GPU memory
(nvidia-smi, per engine process), seconds per stage, generated and scored tokens/s per role, and the target's
generated tokens/s in the score stage as a fraction of the decode roofline (a lower bound: the stage also scores).
Random weights write noise, so the gate and filters keep little; the seeds are scored either way.

    python scripts/gpu_elbo_roofline.py --rehearse /tmp/rehearsal --seeds 16
    python scripts/gpu_elbo_roofline.py --rehearse /tmp/r --tiny --seeds 2 -- target.dtype=float32 ...  # CPU smoke
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's packages, installed or not
from evoprompt.llm.base import Decoding
from evoprompt.llm.embedded import resolve_model_path
from evoprompt.llm.hf import HFBackend
from evoprompt.llm.memory import LLAMA31_8B, QWEN25_7B, Shape, hf_config, shape_of
from evoprompt.seeds import load_seeds
from evoprompt.throughput import fitness_config, measure, scorer_loop

# bytes/s of HBM by device name, checked in this order (the first match wins)
HBM = (("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100 80GB", 2.0e12), ("A100-SXM4-80GB", 2.0e12))


def roofline_tokens_per_s(shape: Shape, rows: int, batch_size: int, context: float, steps: int,
                          bandwidth: float) -> float:
    weight_bytes = (shape.parameters - shape.embedding) * 2  # bf16; the input embedding is a lookup, not a full read
    kv_bytes_per_token = shape.kv_bytes_per_token("bfloat16")
    batches = [batch_size] * (rows // batch_size) + ([rows % batch_size] if rows % batch_size else [])
    seconds = sum(steps * (weight_bytes + b * kv_bytes_per_token * context) / bandwidth for b in batches)
    return rows * steps / seconds


def bandwidth_of(name: str, given: float | None) -> float | None:
    return given or next((bw for key, bw in HBM if key in name), None)


TINY = {"hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 512}  # the same architectures and vocabularies, small enough for a CPU smoke run


def build_folder(dest: Path, values: dict, tok, device: str, seed: int) -> Path:
    """A random-initialised bf16 model folder of this shape with the embedded tokenizer (whose ids fit any vocab)."""
    if (dest / "config.json").is_file():
        return dest
    torch.manual_seed(seed)
    config = hf_config(values | {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id})
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    tmp = dest.with_name(dest.name + ".partial")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(dest)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return dest


class GpuMemory(threading.Thread):
    """Peak memory per GPU process, by nvidia-smi every half second (vLLM runs each engine in its own process, whose
    pid its log lines name)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak: dict[str, int] = {}  # pid -> MiB
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout
            for line in out.splitlines():
                pid, _, mib = (v.strip() for v in line.partition(","))
                if mib.isdigit():
                    self.peak[pid] = max(self.peak.get(pid, 0), int(mib))


def rehearse(args) -> dict:
    base = args.rehearse
    base.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(resolve_model_path("embedded"))
    small = TINY if args.tiny else {}
    t0 = time.perf_counter()
    llama = build_folder(base / ("llama-3.1-8b-random" + "-tiny" * args.tiny), LLAMA31_8B | small, tok, args.device, 1)
    qwen = build_folder(base / ("qwen2.5-7b-random" + "-tiny" * args.tiny), QWEN25_7B | small, tok, args.device, 2)
    build_s = time.perf_counter() - t0
    out = base / "run"
    shutil.rmtree(out, ignore_errors=True)
    overrides = ["+experiment=llama8b", f"target.model={llama}", *(f"{r}.model={qwen}" for r in ("rewriter", "gate", "helper")),
                 "generations=1", f"seeds.limit={args.seeds}", f"cache.path={base / 'calls.sqlite'}", *args.overrides]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    check = subprocess.run([sys.executable, "-m", "evoprompt", "check", *overrides, f"hydra.run.dir={base / 'check'}"],
                           capture_output=True, text=True, env=env)
    print(check.stdout + check.stderr)
    (base / "calls.sqlite").unlink(missing_ok=True)  # every call reaches the engines
    watcher = GpuMemory() if shutil.which("nvidia-smi") else None
    watcher and watcher.start()
    t0 = time.perf_counter()
    with open(base / "run.log", "w") as log:
        rc = subprocess.run([sys.executable, "-m", "evoprompt", "run", *overrides, f"hydra.run.dir={out}"],
                            stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    run_s = time.perf_counter() - t0
    if watcher:
        watcher.stop.set()
        watcher.join()
    log = (base / "run.log").read_text(errors="replace")
    if rc:
        sys.exit(f"the run failed (exit {rc}); its log: {base / 'run.log'}\n" + log[-3000:])
    return rehearsal_report(args, out, log, watcher, build_s, run_s, {"target": llama, "rewriter": qwen})


def rehearsal_report(args, out: Path, log: str, watcher, build_s: float, run_s: float, folders: dict) -> dict:
    info = json.loads((out / "run.json").read_text())["info"]
    logbook = json.loads((out / "checkpoint.json").read_text())["logbook"]
    stages: dict[str, float] = {}
    for gen in logbook:
        for stage, sec in gen["seconds"].items():
            stages[stage] = round(stages.get(stage, 0.0) + sec, 1)
    usage = info["usage"]
    engines = re.findall(r"\(EngineCore pid=(\d+)\).*?Initializing a V1 LLM engine.*?model='([^']+)'", log)
    peaks = watcher.peak if watcher else {}
    memory = [{"engine": Path(m).name, "pid": pid, "peak_gib": round(peaks[pid] / 1024, 1) if pid in peaks else None}
              for pid, m in engines]
    seconds = {"target": stages.get("score", 0), "rewriter": stages.get("mutate", 0) + stages.get("recombine", 0),
               "gate": stages.get("filter + gate", 0)}
    roles = {role: {"model_calls": u["model_calls"], "generated_tokens": u["generated_tokens"],
                    "scored_tokens": u["scored_tokens"], "stage_s": seconds.get(role),
                    "generated_tokens_per_s": round(u["generated_tokens"] / seconds[role], 1) if seconds.get(role) else None,
                    "scored_tokens_per_s": round(u["scored_tokens"] / seconds[role], 1) if seconds.get(role) else None}
             for role, u in usage.items()}
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    bandwidth = bandwidth_of(name, args.hbm_bandwidth)
    shape = shape_of(hf_config(json.loads((folders["target"] / "config.json").read_text())))
    rows = max(1, info["target_samples"] // max(1, sum(1 for g in logbook if g["seconds"].get("score"))))
    steps = json.loads((out / "run.json").read_text())["config"]["target"]["decoding"]["max_new_tokens"]
    tok = AutoTokenizer.from_pretrained(folders["target"])
    texts = [json.loads(l)["text"] for l in (out / "candidates.jsonl").read_text().splitlines() if l.strip()]
    prompt = np.mean([len(tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True))
                      for t in texts]) if texts else 0.0
    roof = bandwidth and roofline_tokens_per_s(shape, rows, min(rows, args.max_num_seqs), prompt + steps / 2, steps,
                                               bandwidth)
    measured = roles["target"]["generated_tokens_per_s"]
    report = {"device": name, "hbm_bandwidth": bandwidth, "tiny": args.tiny, "seeds": args.seeds,
              "build_s": round(build_s, 1), "run_s": round(run_s, 1), "stage_s": stages, "engines": memory,
              "gpu_processes_peak_gib": {pid: round(m / 1024, 1) for pid, m in peaks.items()}, "roles": roles,
              "target_rows_per_stage": rows, "target_decode_roofline_tokens_per_s": roof and round(roof, 1),
              "target_roofline_fraction": roof and measured and round(measured / roof, 4),
              "items": info.get("lineages"), "target_samples": info["target_samples"]}
    print(f"rehearsal of +experiment=llama8b on {name}: models built in {build_s:.0f} s, run {run_s:.0f} s")
    for e in memory:
        print(f"  engine {e['engine']}: peak GPU memory {e['peak_gib']} GiB")
    print("  seconds per stage: " + ", ".join(f"{k} {v}" for k, v in stages.items()))
    for role, r in roles.items():
        print(f"  {role}: {r['model_calls']} calls, {r['generated_tokens']} generated tokens"
              f" ({r['generated_tokens_per_s']}/s), {r['scored_tokens']} scored ({r['scored_tokens_per_s']}/s)")
    print(f"  target decoding: {measured} generated tokens/s in the score stage, roofline {report['target_decode_roofline_tokens_per_s']}"
          f" at {rows} rows: fraction {report['target_roofline_fraction']}")
    return report


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=32, help="Llama-3.1-8B has 32; fewer for a quick run")
    ap.add_argument("--candidates", type=int, default=64, help="first N packaged seeds")
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 640], help="rows per generate batch")
    ap.add_argument("--hbm-bandwidth", type=float, help="bytes/s; default: looked up by GPU name")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", default="auto", choices=["auto", "hash", "generator"], help="HF sampling noise")
    ap.add_argument("--out", type=Path, default=Path("bench-results/gpu-roofline.json"))
    ap.add_argument("--rehearse", type=Path, metavar="DIR", help="the llama8b preset rehearsal, its folders under DIR")
    ap.add_argument("--seeds", type=int, default=16, help="rehearsal: seeds in the run")
    ap.add_argument("--tiny", action="store_true", help="rehearsal: 2-layer, 256-wide models (a CPU smoke run)")
    ap.add_argument("--max-num-seqs", type=int, default=1024, help="rehearsal: vLLM's concurrent rows, for the roofline")
    ap.add_argument("overrides", nargs="*", help="rehearsal: run overrides after --, e.g. target.max_model_len=2048")
    args = ap.parse_args(argv)
    if args.rehearse:
        report = rehearse(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(f"written to {args.out}")
        return report

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    bandwidth = bandwidth_of(name, args.hbm_bandwidth)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(hf_config(LLAMA31_8B | {"num_hidden_layers": args.layers}),
                                                 dtype=torch.bfloat16, attn_implementation="sdpa")
    build_s = time.perf_counter() - t0
    tok = AutoTokenizer.from_pretrained(resolve_model_path("embedded"))
    texts = [s.text for s in load_seeds(None, limit=args.candidates)]
    cfg, decoding = fitness_config(args.K), Decoding(1.0, 1.0, args.max_new_tokens)
    report = {"device": name, "hbm_bandwidth": bandwidth, "torch": torch.__version__, "layers": args.layers,
              "parameters": sum(p.numel() for p in model.parameters()), "build_s": round(build_s, 1),
              "candidates": len(texts), "K": args.K, "max_new_tokens": args.max_new_tokens, "noise": args.noise,
              "attention": model.config._attn_implementation, "runs": []}
    print(json.dumps(report))
    cuda = args.device.startswith("cuda")
    for bs in args.batch_sizes:
        backend = HFBackend.from_model(model, tok, batch_size=bs, noise=args.noise)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        scored = measure(scorer_loop(backend, cfg, decoding, args.seed), texts)  # warms up first
        chats = [[{"role": "user", "content": t}] for t in texts]
        t0 = time.perf_counter()
        backend.generate(chats, args.K, decoding, args.seed)  # the same samples as Scorer's, so the same tokens
        decode_s = time.perf_counter() - t0
        tokens = scored["generated_tokens"]
        context = np.mean([len(backend.prompt_ids(c)) for c in chats]) + args.max_new_tokens / 2
        roof = bandwidth and roofline_tokens_per_s(shape_of(model.config), len(chats) * args.K, bs, context, args.max_new_tokens,
                                                   bandwidth)
        run = {"batch_size": bs, "generated_tokens": tokens, "scorer_s": scored["seconds"],
               "scorer_tokens_per_s": scored["tokens_per_s"], "scorer_candidates_per_s": scored["candidates_per_s"],
               "decode_s": round(decode_s, 2), "decode_tokens_per_s": round(tokens / decode_s, 1),
               "roofline_tokens_per_s": roof and round(roof, 1),
               "scorer_roofline_fraction": roof and round(scored["tokens_per_s"] / roof, 4),
               "decode_roofline_fraction": roof and round(tokens / decode_s / roof, 4),
               "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None}
        report["runs"].append(run)
        print(json.dumps(run))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"written to {args.out}")
    return report


if __name__ == "__main__":
    main()
