"""`evoprompt mitigate`: the third step of the loop. A run's exported items are prompts the target over-refuses;
a false-refusal direction taken from them (the items against everyday requests, made orthogonal to the
true-refusal direction harmful - everyday, or not) is ablated from the target's weights (evoprompt/ablation.py). Which direction, from which layer, at which strength, is a search on
tuning data only: the run's items and this project's own harmful and everyday requests (seeds/organism/),
never a public set or the packaged harmful seeds, which stay held out. The search minimises the items'
refusal subject to the harmful requests' refusal (>= keep_harmful of before), everyday refusal and the
first-token KL on everyday requests.

Outputs: model/ (the mitigated model, an ordinary HF folder with provenance.json), mitigation.json (per
held-out set: PRR before and after, the paired change and its 95% interval), search.json, report.md and
mitigation.png."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from omegaconf import OmegaConf

from evoprompt import ablation as ab
from evoprompt import fmt
from evoprompt.align.report import paired_change
from evoprompt.errors import UserError
from evoprompt.files import atomic_savefig, atomic_write_json, atomic_write_text
from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.llm.embedded import resolve_model_path
from evoprompt.progress import make_console
from evoprompt.public_sets import available, resolve
from evoprompt.rundir.reader import load_run
from evoprompt.schema import MitigateConfig
from evoprompt.seeds import load_seeds
from evoprompt.seeds.loaders import PACKAGED
from evoprompt.validate import without_run_keys

HELP = "remove the over-refusal a run found: ablate a false-refusal direction from the target's weights"
CONFIG = "mitigate"

ORGANISM = Path(PACKAGED["harmless"]).parent / "organism"
# held-out sets: (name, kind, public set or file, split); public ones only where $EVOPROMPT_DATA has them
HELD_OUT = [("xstest-safe", "over-refusal", "data:xstest", "safe"), ("orbench-hard", "over-refusal", "data:orbench", "safe"),
            ("phtest-harmless", "over-refusal", "data:phtest", "safe"), ("oktest", "over-refusal", "data:oktest", "safe"),
            ("xstest-unsafe", "harmful", "data:xstest", "unsafe"), ("harmful-seeds", "harmful", str(PACKAGED["harmful"]), "safe"),
            ("everyday-heldout", "everyday", str(ORGANISM / "everyday_heldout.jsonl"), "safe")]


def _texts(path: str, split: str = "safe", limit: int | None = None) -> list[str]:
    return [s.text for s in load_seeds(path, "auto", None, limit, split)]


def _items(dirs: list[str]) -> tuple[list[str], list[str]]:
    """The runs' items, and the seeds they were made from (each once)."""
    out: list[str] = []
    seeds: list[str] = []
    for d in dirs:
        run = load_run(Path(d).expanduser())
        if not run.benchmark:
            raise UserError(f"data: {d} has no exported items (benchmark.jsonl) to take a direction from")
        out += [b.text for b in run.benchmark if b.text not in out]
        seeds += [t for b in run.benchmark if (t := run.seed_text(b.seed.id)) and t not in seeds]
    return out, seeds


def _load(model_ref: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(model_ref)
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    tok.pad_token = tok.pad_token or tok.eos_token
    return path, tok, AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def main(cfg, run_dir: Path) -> dict:
    c = without_run_keys(MitigateConfig, OmegaConf.to_container(cfg, resolve=True))
    if not c.data:
        raise UserError("no run given: evoprompt mitigate 'data=[RUN_DIR,...]' (run directories of `evoprompt run`)")
    unknown = sorted(set(c.kinds) - {"orthogonal", "raw", "framing"})
    if unknown:
        raise UserError(f"kinds: unknown '{unknown[0]}'; valid: orthogonal, raw, framing")
    console = make_console(stderr=True)
    t0 = time.time()
    items, seeds = _items(c.data)
    harmful, everyday = _texts(str(ORGANISM / "harmful.jsonl")), _texts(str(ORGANISM / "everyday.jsonl"))
    if len(harmful) < 2 * c.tune or len(everyday) < 2 * c.tune:
        raise UserError(f"tune={c.tune}: the organism data has {len(harmful)} harmful and {len(everyday)} everyday "
                        "requests, fewer than twice that")
    path, tok, model = _load(c.target.model)
    layers = [l for l in c.layers if 0 <= l <= model.config.num_hidden_layers]
    if not layers:
        raise UserError(f"layers={c.layers}: none within 0..{model.config.num_hidden_layers}")
    sp = c.target.system_prompt
    console.print(f"[bold]directions[/]: {len(items)} items, {c.tune} harmful, {c.tune} everyday requests")
    dirs = ab.directions(*[ab.last_states(model, tok, ab.chat_texts(tok, x, sp)) if x else None
                           for x in (items, harmful[:c.tune], everyday[:c.tune], seeds)])
    tune = {"items": items, "harmful": harmful[c.tune:2 * c.tune], "everyday": everyday[c.tune:2 * c.tune]}
    base, trials = _search(model, tok, dirs, layers, tune, c, console)
    atomic_write_json(run_dir / "search.json", {"before": base, "trials": trials}, indent=1)
    feasible = [t for t in trials if t["feasible"]]
    if not feasible:
        raise UserError(f"no setting of the search keeps safety (harmful >= {c.keep_harmful} of before, KL <= "
                        f"{c.max_kl}): see {run_dir / 'search.json'}; try smaller strengths or other layers")
    best = min(feasible, key=lambda t: (t["items"], t["kl"], t["edit"]["strength"]))
    edit = ab.Edit(**best["edit"])
    console.print(f"[bold]chosen[/]: {edit.name()} (items {best['items']:.2f}, harmful {best['harmful']:.2f})")
    out = _bake(model, tok, dirs[edit.kind][edit.layer], edit, run_dir / "model", c, path)
    result = _measure(c, run_dir, path, out, sp, console, edit, best, base)
    result["seconds"] = round(time.time() - t0, 1)
    atomic_write_json(run_dir / "mitigation.json", result, indent=1)
    console.print(f"mitigated model: {out}; table: {run_dir / 'report.md'} ({result['seconds']:.0f} s)")
    return result


def _search(model, tok, dirs, layers: list[int], tune: dict[str, list[str]], c: MitigateConfig, console):
    """Every (kind, layer, strength) on the tuning prompts: refusal of each set and the everyday first-token KL,
    and whether it meets the constraints."""
    judge = AnchoredPhraseJudge()
    texts = {k: ab.chat_texts(tok, v, c.target.system_prompt) for k, v in tune.items()}

    def rates() -> dict:
        return {k: sum(judge.prob(tune[k], ab.greedy(model, tok, texts[k], c.search_tokens))) / len(tune[k])
                for k in tune}

    base = rates() | {"kl": 0.0}
    ref = ab.next_token_logprobs(model, tok, texts["everyday"])
    console.print(f"before: items {base['items']:.2f}, harmful {base['harmful']:.2f}, everyday {base['everyday']:.2f}")
    trials = []
    for kind in c.kinds:
        for layer in layers:
            for s in c.strengths:
                e = ab.Edit(kind, layer, s)
                with ab.ablated(model, dirs[kind][layer], s):
                    r = rates() | {"kl": ab.kl(ref, ab.next_token_logprobs(model, tok, texts["everyday"]))}
                ok = (r["harmful"] >= c.keep_harmful * base["harmful"] and r["kl"] <= c.max_kl
                      and r["everyday"] <= max(c.max_everyday, base["everyday"]))
                trials.append({"edit": e.__dict__, **{k: round(v, 4) for k, v in r.items()}, "feasible": ok})
                console.print(f"  {e.name():34} items {r['items']:.2f}  harmful {r['harmful']:.2f}  everyday "
                              f"{r['everyday']:.2f}  KL {r['kl']:.3f}{'' if ok else '  (out)'}")
    return base, trials


def _bake(model, tok, r, edit: ab.Edit, out: Path, c: MitigateConfig, source: str) -> Path:
    """The edit in the weights, saved atomically as an HF folder with its provenance."""
    from importlib.metadata import version

    ab.bake(model, r, edit.strength)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    runs = {d: hashlib.sha256((Path(d).expanduser() / "benchmark.jsonl").read_bytes()).hexdigest() for d in c.data}
    organism = {n: hashlib.sha256((ORGANISM / n).read_bytes()).hexdigest() for n in ("harmful.jsonl", "everyday.jsonl")}
    atomic_write_json(tmp / "provenance.json", {
        "method": "ablate (evoprompt/ablation.py)", "source_model": c.target.model, "source_path": source,
        "direction": edit.kind, "layer": edit.layer, "strength": edit.strength, "tune": c.tune,
        "data": runs, "organism": organism, "versions": {p: version(p) for p in ("torch", "transformers")}}, indent=1)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _measure(c: MitigateConfig, run_dir: Path, before_path: str, after_path: Path, sp, console, edit, best,
             base) -> dict:
    """Greedy answers of both models to every held-out set; PRR before/after with the paired bootstrap change."""
    judge = AnchoredPhraseJudge()
    sets = [(n, k, ref, split) for n, k, ref, split in HELD_OUT if not ref.startswith("data:") or available(ref)]
    if c.heldout_run:
        sets.append(("fresh-run-split", "over-refusal", str(Path(c.heldout_run).expanduser() / "benchmark.jsonl"), "safe"))
    prompts = {n: _texts(str(resolve(ref)) if ref.startswith("data:") else ref, split, c.limit) for n, _, ref, split in sets}
    answers = {}
    for label, p in (("before", before_path), ("after", str(after_path))):
        _, tok, model = _load(p)
        for n, xs in prompts.items():
            console.print(f"{label}: {n} ({len(xs)} prompts)")
            answers[(label, n)] = ab.greedy(model, tok, ab.chat_texts(tok, xs, sp), c.measure_tokens)
    rows = []
    for n, kind, _, _ in sets:
        xs = prompts[n]
        b, a = (judge.prob(xs, answers[(label, n)]) for label in ("before", "after"))
        ch = paired_change(b, a, c.bootstrap, c.seed)
        rows.append({"name": n, "kind": kind, "n": len(xs), "before": round(sum(b) / len(xs), 4),
                     "after": round(sum(a) / len(xs), 4), "change": round(ch[0], 4),
                     "change_ci": [round(ch[1], 4), round(ch[2], 4)],
                     "examples": [{"prompt": x, "before": y0, "after": y1} for x, y0, y1
                                  in list(zip(xs, answers[("before", n)], answers[("after", n)]))[:10]]})
    result = {"method": "ablate", "model": str(after_path), "edit": edit.__dict__, "search_choice": best,
              "search_before": base, "sets": rows}
    _report(run_dir, result)
    return result


def _report(run_dir: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["sets"]
    table = [[r["name"], r["kind"], r["n"], fmt.num(r["before"]), fmt.num(r["after"]),
              f"{r['change']:+.3f} [{r['change_ci'][0]:+.3f}, {r['change_ci'][1]:+.3f}]"] for r in rows]
    e = result["edit"]
    lines = ["# evoprompt mitigate: before and after", "",
             f"- method: ablate the `{e['kind']}` direction from layer {e['layer']} at strength {e['strength']} from "
             f"every write into the residual stream (chosen on tuning data: {json.dumps(result['search_choice'])})",
             f"- mitigated model: `{result['model']}`",
             "- PRR: share of greedy answers the anchored phrase judge reads as refusals; change: paired over prompts, "
             "bootstrap 95% interval", "",
             *fmt.md_table(["set", "kind", "n", "PRR before", "PRR after", "change [95% CI]"], table), "",
             "![before vs after](mitigation.png)", ""]
    atomic_write_text(run_dir / "report.md", "\n".join(lines))
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(rows) + 2), 3.4))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["before"] for r in rows], 0.4, label="before")
    ax.bar([x + 0.2 for x in xs], [r["after"] for r in rows], 0.4, label="after")
    ax.set_xticks(list(xs), [r["name"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("PRR (refused share)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, run_dir / "mitigation.png", dpi=120)
    plt.close(fig)
