"""`evoprompt build-guarded`: rebuild the safety LoRA of the `embedded-guarded` target from seeds/organism/ and
print its profile.

1. The base model (the packaged SmolLM2-135M-Instruct) answers every contrast and everyday request greedily;
   answers a refusal judge (the shipped classifier or the anchored phrase detector) reads as refusals are
   dropped, so the model is never taught to refuse a harmless request.
2. LoRA SFT (TRL) on harmful request -> one of the written refusals, contrast / everyday request -> the base
   model's own answer.
3. The adapter is merged into a plain folder and, with the plain model beside it, answers held-out sets once
   each, near-greedy, as `eval` does: XSTest unsafe and the packaged harmful seeds (refusal wanted), XSTest
   safe, OR-Bench, PHTest harmless, OKTest (over-refusal) and the held-out everyday requests.
The adapter, its provenance (data hashes, recipe, versions, profile) and the profile go to the run directory;
`install=true` also puts the adapter where the preset reads it (evoprompt/llm/guarded/)."""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

from omegaconf import OmegaConf

from evoprompt import __version__
from evoprompt.errors import UserError
from evoprompt.files import atomic_write_json, atomic_write_text
from evoprompt.llm.embedded import SHIPPED, embedded_llm_dir, guarded_llm_dir
from evoprompt.llm.lora import merge
from evoprompt.organism.build import build, install, measure, profile_sets, report, versions
from evoprompt.organism.data import data_hashes, organism_dir
from evoprompt.progress import make_console
from evoprompt.roles import Roles
from evoprompt.schema import GuardedConfig, RoleConfig
from evoprompt.validate import typed

HELP = "rebuild the embedded-guarded target's safety LoRA from seeds/organism/ and print its profile"
CONFIG = "build_guarded"  # its config in evoprompt/conf


def main(cfg, run_dir: Path) -> dict:
    t0 = time.time()
    c = typed(GuardedConfig, OmegaConf.to_container(cfg, resolve=True))
    console = make_console(stderr=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    roles = Roles(c.cache, c.embedder)
    sets = profile_sets(c.profile_limit, c.beside_limit, c.seed, console)
    if not sets:
        raise UserError("no profile set is available")
    built: dict = {}
    if c.profile_only:
        merged = guarded_llm_dir()
    else:
        adapter, built = build(c, roles, run_dir, console)
        merged = run_dir / "merged"
        merge(str(embedded_llm_dir()), adapter, merged)
    models = {"plain": RoleConfig(), "guarded": RoleConfig(model=str(merged))}
    rows = measure(models, sets, c, roles, run_dir, console)
    table = report(rows, sets, list(models))
    atomic_write_json(run_dir / "profile.json", [r.to_json() for r in rows], indent=1)
    atomic_write_text(run_dir / "profile.md", "# embedded-guarded profile\n\n" + table + "\n")
    if built:
        prov = {"evoprompt_version": __version__, "data": data_hashes(), "data_dir": str(organism_dir()),
                "recipe": asdict(replace(c, hydra={})), "versions": versions(), **built,
                "profile": {f"{r.set}/{r.target}/{r.metric}": r.to_json() for r in rows if r.metric in ("PRR", "CRR")},
                "wall_time_s": round(time.time() - t0, 1)}
        atomic_write_json(run_dir / "adapter" / "provenance.json", prov, indent=1, default=str)
        if c.install:
            install(run_dir / "adapter")
            console.print(f"installed the adapter in {SHIPPED} (the embedded-guarded preset)")
    console.print(table)
    return {"profile": rows, **built}
