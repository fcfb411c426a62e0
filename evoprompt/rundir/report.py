"""report.md and fitness.png: what a run did, per generation, with its resolved configuration."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from evoprompt.files import atomic_savefig, atomic_write_text
from evoprompt.fmt import md_row
from evoprompt.llm.openai_backend import COOL_DOWN, DOWN_AFTER
from evoprompt.records import GenerationRecord, RunInfo


def plot_fitness(logbook: list[GenerationRecord], path: Path) -> None:
    gens = [r.gen for r in logbook]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(gens, [r.population.mean for r in logbook], "o-", label="population mean F")
    ax.plot(gens, [r.population.max for r in logbook], "s--", label="population max F")
    best = [r.best_ever for r in logbook]
    if any(b is not None for b in best):
        ax.plot([g for g, b in zip(gens, best) if b is not None], [b for b in best if b is not None], "^-",
                label="best ever (gated)")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness F(x)")
    ax.set_xticks(gens)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def usage(backends: dict) -> dict:
    """Per role: the weights' precision (None: a server's) and what reached the model, cache hits apart."""
    out = {}
    for role, b in backends.items():
        endpoints = getattr(getattr(b, "inner", None), "endpoint_usage", None)
        out[role] = {"model": b.model_id, "precision": b.precision} | asdict(b.usage) | (
            {"endpoints": endpoints()} if endpoints else {})
    return out


_USAGE_COUNTS = ("model_calls", "prompts", "cache_hits", "samples", "generated_tokens", "scored_tokens")
USAGE_HEADER = ["role", "model", "precision", *(c.replace("_", " ") for c in _USAGE_COUNTS)]
USAGE_NOTE = ("Per role: batched calls and prompts that reached the model, prompts answered by the call cache (or by "
              "an identical prompt in the same call), responses generated, their tokens, and response tokens scored.")


def usage_rows(usage: dict) -> list[list]:
    """USAGE_HEADER's cells per role of usage() (as run.json and eval's usage.json hold it)."""
    return [[role, u["model"], u["precision"] or "server's", *(u[c] for c in _USAGE_COUNTS)] for role, u in usage.items()]


def usage_table(usage: dict) -> list[str]:
    if not usage:
        return []
    lines = (["## Model usage", "", USAGE_NOTE, "", md_row(*USAGE_HEADER), md_row(*["---"] * len(USAGE_HEADER))]
             + [md_row(*r) for r in usage_rows(usage)] + [""])
    eps = [(role, url, e) for role, u in usage.items() for url, e in (u.get("endpoints") or {}).items()]
    if eps:
        lines += [f"Per endpoint of the OpenAI-compatible roles (requests include retries; taken out: times it failed "
                  f"{DOWN_AFTER} times in a row and was left out for {COOL_DOWN:g} s):", "",
                  md_row("role", "endpoint", "requests", "failures", "seconds", "taken out"), md_row(*["---"] * 6)]
        lines += [md_row(role, url, e["requests"], e["failures"], e["seconds"], e["taken_down"]) for role, url, e in eps]
        lines.append("")
    return lines


def write_report(path: Path, logbook: list[GenerationRecord], chooser: dict, counts: dict, run_info: RunInfo, config_yaml: str,
                 transfer: list[str] = ()) -> None:
    lines = ["# evoprompt run report", ""]
    lines += [f"- {k}: {v}" for k, v in run_info.to_json().items() if k not in ("operators", "transfer", "usage")]
    lines += ["", *usage_table(run_info.usage)]
    lines += ["", "## Per generation", "",
              md_row("gen", "candidates scored", "filtered", "rejected", "gate pass", "acceptance", "elites", "tau", "mean F", "max F",
                   "std F", "p(refusal)", "sampled refusal rate", "opener prob", "model calls"),
              md_row(*["---"] * 15)]
    for r in logbook:
        p = r.population
        gated = r.candidates + r.rejected
        lines.append(md_row(r.gen, r.candidates, r.filtered, r.rejected,
                          f"{r.candidates / gated:.0%}" if r.gen and gated else "-",
                          f"{r.accepted}/{r.lineages} ({r.accepted / r.lineages:.0%})" if r.gen else "-",
                          r.elites, f"{r.tau:.3f}",
                          f"{p.mean:.4f}", f"{p.max:.4f}", f"{p.std:.4f}", f"{r.refusal_prob:.4f}",
                          f"{r.judge_refusal_rate:.3f}", f"{r.opener_prob:.4f}",
                          ", ".join(f"{k} {v}" for k, v in r.calls.items() if v) or "0 (cached)"))
    broad = [r.gen for r in logbook if r.mode == "breadth"]
    if broad:
        lines += ["", f"**Saturated after generation {broad[0] - 1}**: the target refused (nearly) the whole population "
                  f"(search.saturation), so generations {broad[0]}-{broad[-1]} framed the seeds anew (breadth: new "
                  "framings and word edits of each seed, no rewriter) instead of rewriting further (depth)."]
    lines += ["", "Population = the current instruction x_t of every lineage after selection; generation 0 = the seeds. "
              "Gate pass = scored / (scored + rejected by guard or gate). p(refusal) is the mean over K samples of the refusal probability used in F (before the eps floor).", ""]
    lines += ["## Operators", "",
              "Per strategy and method (llm: the rewriter; frame / lexicon: framings and sensitive-word edits). "
              "tried = reached the filters; improved = scored above the lineage's current instruction.", "",
              md_row("operator", "tried", "filtered", "rejected", "scored", "improved", "success rate"),
              md_row(*["---"] * 7)]
    for op, row in sorted(run_info.operators.items()):
        lines.append(md_row(op, row["tried"], row["filtered"], row["rejected"], row["scored"], row["improved"],
                          f"{row['improved'] / row['tried']:.2f}" if row["tried"] else "-"))
    lines += ["", "## Strategy success (adaptive chooser)", "",
              "Success = a mutant that passed filters, guard and gate and scored above its parent; filtered, "
              "rejected and failed rewrites count as failures.", "",
              md_row("strategy", "trials", "successes", "rate"), md_row("---", "---", "---", "---")]
    for s in sorted(chooser.get("trials", {}), key=lambda s: -chooser["trials"][s]):
        n, k = chooser["trials"][s], chooser["successes"][s]
        lines.append(md_row(s, n, k, f"{k / n:.2f}" if n else "-"))
    lines += ["", *transfer]
    lines += ["## Outputs", ""] + [f"- {k}: {v}" for k, v in counts.items()]
    lines += ["", "## Resolved configuration", "", "```yaml", config_yaml.rstrip(), "```", ""]
    atomic_write_text(path, "\n".join(lines))
