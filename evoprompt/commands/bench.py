"""`make bench`: ELBO scoring throughput of one generation's candidates on this machine.

The candidates are a generation's worth of lineages: each of the first packaged seeds with variants made by
the template operators (operators/frame.py: framings and sensitive-word edits, no model call), so siblings
compete as they do in `select`. The target is the embedded SmolLM2, fitness settings those of the default
config (opener prior on; no embedder, so mu = 0). Ways of scoring:
(a) the reference code's loop, one unbatched `generate` call per candidate and sample, in float32 as that code
    ran on CPUs (timed on an even subset of the candidates: it runs one at a time, so its rate does not depend
    on how many there are);
(b) Scorer on the HF backend (batched; K samples of a prompt share one prefill);
(c) Scorer on the vLLM backend (one request per sample, prefix caching on);
(b) and (c) load the weights in the dtype the backends choose (`dtype: auto`: bf16 where the CPU has bf16 units);
(b-race), (c-race): the same with racing (fitness.K_min, fitness/racing.py);
(d) Scorer on the OpenAI-compatible backend, one vLLM server on 127.0.0.1; (e) the same over two servers
    (least-outstanding dispatch, llm/openai_backend.py): the ratio (e)/(d) is what a second machine buys. On a
    CPU both servers share its cores, so expect a ratio near 1; the driver's share (this process's CPU time
    during the stage, the servers excluded) is the overhead the fan-out adds, per request and per stage;
(f) Scorer on the Ray pool backend (llm/ray_pool.py): two vLLM engines as actors of a local Ray cluster, one
    shard of each call per actor (float32, as the servers); its ratio is to one engine, (d) (or (c) without it).
Selection agreement: the fraction of lineages whose highest-F candidate is the one the same backend selects
with full K (the samples a candidate gets are the same either way, so this measures only what racing
changes). Model load and engine start are not timed: each way first scores a warm-up prompt.

    python -m evoprompt bench [--lineages 8 --per-lineage 6 --K 10 --K-min 2 --max-new-tokens 48 --skip-vllm
                               --skip-fanout --skip-ray]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.table import Table

from evoprompt.llm.base import Decoding
from evoprompt.llm.hf import HFBackend
from evoprompt.llm.openai_backend import OpenAIBackend
from evoprompt.llm.serve import VLLMServer
from evoprompt.llm.vllm_backend import VLLMBackend
from evoprompt.progress import make_console
from evoprompt.schema import FitnessConfig
from evoprompt.throughput import (
    METHODS,
    agreement,
    candidate_pool,
    fitness_config,
    machine_info,
    measure,
    reference_loop,
    scorer_loop,
)

HELP = "ELBO scoring throughput: reference loop vs HF batched vs vLLM (argparse flags: bench --help)"
CONFIG = None  # its config in evoprompt/conf (None: argparse flags of its own)


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m evoprompt bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lineages", type=int, default=8, help="first N packaged seeds, one lineage each")
    ap.add_argument("--per-lineage", type=int, default=6, help="candidates per lineage (the seed and its variants)")
    ap.add_argument("--reference-candidates", type=int, default=4, help="(a) is timed on this many, spread evenly")
    ap.add_argument("--K", type=int, default=10, help="samples per candidate (the most, with racing)")
    ap.add_argument("--K-min", type=int, default=2, help="racing: samples every candidate gets")
    ap.add_argument("--race-z", type=float, help="racing: bound half-width in standard errors (default: the config's)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=256, help="HF backend rows per batch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference-dtype", default="float32", help="(a)'s weights (float32: the reference code on CPUs)")
    ap.add_argument("--out", type=Path, default=Path("bench-results/bench.json"))
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--skip-fanout", action="store_true", help="leave out (d) and (e), which start two vLLM servers")
    ap.add_argument("--skip-ray", action="store_true", help="leave out (f), which starts a local Ray cluster")
    ap.add_argument("--concurrency", type=int, default=8, help="(d), (e): requests in flight per server")
    return ap.parse_args(argv)


def _finish(results: dict, groups: list) -> None:
    """Speed-up against (a), token share and selection agreement against full K, per way."""
    base = results["reference"]["candidates_per_s"]
    for m, r in results.items():
        r["speedup"] = round(r["candidates_per_s"] / base, 2)
        r["samples_share"] = round(r["generated_tokens"] / results[m.removesuffix("-race")]["generated_tokens"], 3) \
            if m != "reference" else None
        r["selection_agreement"] = None if m == "reference" else round(
            agreement(groups, r["fitness"], results[m.removesuffix("-race")]["fitness"]), 3)
    for r in results.values():
        r.pop("fitness")


def _table(report: dict, args, n_texts: int, n_ref: int, race_z: float) -> Table:
    results, cfg, machine = report["results"], report["config"], report["machine"]
    table = Table(title=f"ELBO scoring: {n_texts} candidates in {args.lineages} lineages x K={args.K} "
                        f"(racing: K_min={args.K_min}, z={race_z:g}) x {args.max_new_tokens} new tokens "
                        f"({machine['device']}, {machine['cpu_count']} CPUs; (a) {cfg['reference_dtype']}, "
                        f"(b) {cfg['hf_dtype']}, (c) {cfg.get('vllm_dtype', '-')})",
                  caption=f"x (a): candidates/s relative to (a) (timed on {n_ref} of the candidates); "
                          "tokens: generated tokens relative to full K; agreement: lineages selecting the candidate "
                          "full K selects")
    for col in ("method", "seconds", "cand/s", "gen tok/s", "x (a)", "tokens", "agreement", "mean F"):
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for m, r in results.items():
        table.add_row(METHODS[m], f"{r['seconds']:.1f}", f"{r['candidates_per_s']:.3f}", f"{r['tokens_per_s']:.1f}",
                      f"{r['speedup']:.2f}", "-" if r["samples_share"] is None else f"{r['samples_share']:.2f}",
                      "-" if r["selection_agreement"] is None else f"{r['selection_agreement']:.2f}", f"{r['mean_fitness']:.3f}")
    return table


def fanout(report: dict, run, args, cfg: FitnessConfig, decoding: Decoding, texts: list[str], groups: list,
           console) -> None:
    """(d) and (e): the same candidates through OpenAI-compatible servers on 127.0.0.1, one and then two."""
    logs = args.out.parent / "servers"
    try:
        with VLLMServer(logs / "server-1.log") as one, VLLMServer(logs / "server-2.log") as two:
            share, per_request = {}, {}
            for method, urls in (("server-1", [one.url]), ("server-2", [one.url, two.url])):
                backend = OpenAIBackend("embedded", base_urls=urls, max_concurrency=args.concurrency,
                                        supports_logprobs=True, timeout=600.0)
                run(method, scorer_loop(backend, cfg, decoding, args.seed), texts, groups)
                r = report["results"][method]
                requests = sum(e["requests"] for e in backend.endpoint_usage().values())
                r["endpoints"] = backend.endpoint_usage()
                share[method] = r["process_cpu_s"] / r["seconds"]
                per_request[method] = 1000 * r["process_cpu_s"] / max(1, requests)
            f = report.setdefault("fanout", {"driver_share": {}, "driver_ms_per_request": {}})
            f["ratio"] = report["results"]["server-2"]["candidates_per_s"] / report["results"]["server-1"]["candidates_per_s"]
            f["driver_share"] |= share
            f["driver_ms_per_request"] |= per_request
    except Exception as e:  # a server that does not start: the other ways are still worth writing
        report["fanout_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
        console.print(f"[red]fan-out failed: {report['fanout_error']}[/red]")


def ray_fanout(report: dict, run, args, cfg: FitnessConfig, decoding: Decoding, texts: list[str], groups: list,
               console) -> None:
    """(f): the same candidates on a Ray pool of two engines; a request is one shard sent to one actor."""
    try:
        import ray

        from evoprompt.llm.ray_pool import RayPoolBackend
    except ImportError:
        report["ray_error"] = "ray is not installed (pip install 'evoprompt[ray]')"
        console.print(f"[red]{report['ray_error']}[/red]")
        return
    ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)
    try:
        pool = RayPoolBackend("embedded", actors=2, dtype="float32", max_model_len=1024)
        run("ray-2", scorer_loop(pool, cfg, decoding, args.seed), texts, groups)
        r = report["results"]["ray-2"]
        r["pool"] = pool.pool_usage()
        one = report["results"].get("server-1") or report["results"].get("vllm")
        f = report.setdefault("fanout", {"driver_share": {}, "driver_ms_per_request": {}})
        f["ray_ratio"] = r["candidates_per_s"] / one["candidates_per_s"] if one else None
        f["driver_share"]["ray-2"] = r["process_cpu_s"] / r["seconds"]
        f["driver_ms_per_request"]["ray-2"] = 1000 * r["process_cpu_s"] / max(1, r["pool"]["shards"])
    except Exception as e:
        report["ray_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
        console.print(f"[red]Ray pool failed: {report['ray_error']}[/red]")
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> dict:
    args = _args(argv)
    # vLLM's engine leaves semaphores behind; multiprocessing's resource tracker (a process started later, with
    # these options) would report them after the summary line, which must stay the last line of the output
    sys.warnoptions.append("ignore:resource_tracker:UserWarning")
    pool = candidate_pool(args.lineages, args.per_lineage, args.seed)
    groups, texts = [g for g, _ in pool], [t for _, t in pool]
    step = max(1, len(texts) // max(1, args.reference_candidates))
    ref_texts = texts[::step][:args.reference_candidates]
    full, race = fitness_config(args.K), fitness_config(args.K, args.K_min, args.race_z)
    decoding = Decoding(1.0, 1.0, args.max_new_tokens)
    console = make_console()
    hf = HFBackend("embedded", batch_size=args.batch_size)
    ref = hf if hf.precision == args.reference_dtype else HFBackend("embedded", dtype=args.reference_dtype)
    report = {"config": {"lineages": args.lineages, "candidates": len(texts), "reference_candidates": len(ref_texts),
                         "K": args.K, "K_min": args.K_min, "race_z": race.race_z, "max_new_tokens": args.max_new_tokens,
                         "hf_batch_size": args.batch_size, "reference_dtype": ref.precision, "hf_dtype": hf.precision,
                         "seed": args.seed, "estimator": full.estimator},
              "machine": machine_info(hf.device), "results": {}}
    results = report["results"]

    def run(method: str, score, texts: list[str], groups: list | None = None) -> None:
        console.print(f"{METHODS[method]}: timing {len(texts)} candidates x K<={args.K} x {args.max_new_tokens} new tokens")
        results[method] = measure(score, texts, groups)
        console.print(f"  {results[method]['seconds']} s")

    run("reference", reference_loop(ref, full, decoding, args.seed), ref_texts)
    del ref
    run("hf", scorer_loop(hf, full, decoding, args.seed), texts, groups)
    run("hf-race", scorer_loop(hf, race, decoding, args.seed), texts, groups)
    del hf  # free its memory before the vLLM engine starts
    if not args.skip_vllm:
        try:
            vllm = VLLMBackend("embedded")
            report["config"]["vllm_dtype"] = vllm.precision
            run("vllm", scorer_loop(vllm, full, decoding, args.seed), texts, groups)
            run("vllm-race", scorer_loop(vllm, race, decoding, args.seed), texts, groups)
            vllm.llm.llm_engine.engine_core.shutdown()  # its exit messages come now, not after the summary line
        except Exception as e:  # vLLM fails with many exception types; (a) and (b) are still worth writing
            report["vllm_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
            console.print(f"[red]vLLM failed: {report['vllm_error']}[/red]")
    if not args.skip_fanout:
        fanout(report, run, args, full, decoding, texts, groups, console)
    if not args.skip_ray:
        ray_fanout(report, run, args, full, decoding, texts, groups, console)
    _finish(results, groups)
    table = _table(report, args, len(texts), len(ref_texts), race.race_z)
    console.print(table)
    if "server-2" in results:
        f = report["fanout"]
        console.print(f"fan-out: two servers / one = {f['ratio']:.2f}; driver CPU per request "
                      f"{f['driver_ms_per_request']['server-1']:.2f} / {f['driver_ms_per_request']['server-2']:.2f} ms, "
                      f"share of the stage {f['driver_share']['server-1']:.1%} / {f['driver_share']['server-2']:.1%}")
    if "ray-2" in results:
        f = report["fanout"]
        ratio = "-" if f["ray_ratio"] is None else f"{f['ray_ratio']:.2f}"
        console.print(f"fan-out: Ray pool of two / one engine = {ratio}; driver CPU per shard "
                      f"{f['driver_ms_per_request']['ray-2']:.2f} ms, share of the stage {f['driver_share']['ray-2']:.1%}")
    best = max((m for m in results if m != "reference"), key=lambda m: results[m]["speedup"])
    report["best"] = {"method": best, "speedup": results[best]["speedup"],
                      "selection_agreement": results[best]["selection_agreement"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    console.print(f"written to {args.out}")
    print(f"best speedup: {results[best]['speedup']:.2f} ({best}), selection agreement: {results[best]['selection_agreement']:.2f}")
    return report


if __name__ == "__main__":
    main()
