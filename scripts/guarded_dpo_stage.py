"""Recipe r10 of the guarded target: a DPO safety stage on top of the shipped SFT adapter, then its profile at
several doses. Measured once (docs/measurements.md, r10) and not built into `build-guarded`, because it did not
move the packaged harmful seeds' refusal off the line every SFT recipe sits on.

1. The shipped adapter at its trained dose (lora_alpha 32) is merged into a plain folder.
2. Pairs from seeds/organism/: harmful request -> chosen a written refusal of its category, rejected the base
   model's own greedy answer (where the base model complies); contrast and everyday request -> chosen the base
   model's answer, rejected a generic refusal; `tones` of them again inside a tone, as the SFT mix.
3. A fresh LoRA is trained with TRL DPO on the merged model (the reference is that model), and merged.
4. For each dose c, the folder base + c x (tuned - base) answers the profile sets as `build-guarded` does.

    EVOPROMPT_DATA=../shared/data PYTHONPATH=. python scripts/guarded_dpo_stage.py OUT [--lr 1e-4] [--steps 120]
        [--beta 0.1] [--doses 1.0 1.15 1.3]
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from evoprompt.align.train import progress_callback, train_stage
from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge
from evoprompt.llm import Decoding
from evoprompt.llm.embedded import SHIPPED, embedded_llm_dir
from evoprompt.llm.lora import merge
from evoprompt.organism.build import measure, profile_sets, report
from evoprompt.organism.data import read_set, refusal_pool, tones
from evoprompt.progress import make_console
from evoprompt.roles import Roles
from evoprompt.schema import AlignSettings, GuardedConfig, RoleConfig, StageSettings
from evoprompt.validate import typed


def pairs(c: GuardedConfig, roles: Roles, console) -> list[dict]:
    harmful, helpful = read_set("harmful"), read_set("contrast") + read_set("everyday")
    texts = [r["text"] for r in harmful + helpful]
    console.print(f"base model: answering {len(texts)} requests")
    samples = roles.backend("base", RoleConfig()).generate([[{"role": "user", "content": t}] for t in texts], 1,
                                                           Decoding(0.0, 1.0, c.answer_tokens), c.seed)
    answer = {t: s[0].text.strip() for t, s in zip(texts, samples)}
    refuses, rng = AnchoredPhraseJudge().refuses, random.Random(c.seed)
    rows = [(r["text"], rng.choice(refusal_pool(r["category"])), answer[r["text"]]) for r in harmful
            if answer[r["text"]] and not refuses(answer[r["text"]])]
    rows += [(r["text"], answer[r["text"]], rng.choice(refusal_pool("any"))) for r in helpful
             if answer[r["text"]] and not refuses(answer[r["text"]])]
    rows += [(rng.choice(tones()).format(q=q, lc=q[:1].lower() + q[1:]), chosen, rejected)
             for q, chosen, rejected in list(rows) if rng.random() < c.tones]
    rng.shuffle(rows)
    return [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": ch}],
             "rejected": [{"role": "assistant", "content": rj}]} for q, ch, rj in rows]


def scaled(base: Path, tuned: Path, c: float, out: Path) -> Path:
    """base + c x (tuned - base), tensor by tensor: the dose of everything both stages added."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(tuned, out, dirs_exist_ok=True)
    b, t = load_file(str(base / "model.safetensors")), load_file(str(tuned / "model.safetensors"))
    save_file({k: (b[k].float() + c * (v.float() - b[k].float())).to(v.dtype) if k in b else v for k, v in t.items()},
              str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--doses", type=float, nargs="+", default=[1.0, 1.15, 1.3])
    a = ap.parse_args()
    console = make_console(stderr=True)
    c = typed(GuardedConfig, {})
    roles = Roles(c.cache, c.embedder)
    a.out.mkdir(parents=True, exist_ok=True)
    sft_adapter, sft = a.out / "sft-adapter", a.out / "sft-merged"
    shutil.copytree(SHIPPED, sft_adapter, dirs_exist_ok=True)
    config = json.loads((sft_adapter / "adapter_config.json").read_text(encoding="utf-8"))
    (sft_adapter / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": c.lora.alpha}))
    merge(str(embedded_llm_dir()), sft_adapter, sft)
    rows = pairs(c, roles, console)
    console.print(f"{len(rows)} DPO pairs")
    adapter, _ = train_stage("dpo", str(sft), None, rows,
                             StageSettings(learning_rate=a.lr, max_steps=a.steps, batch_size=8, beta=a.beta),
                             AlignSettings(lora=c.lora, max_length=c.max_length, save_steps=max(10, a.steps // 4)),
                             a.out, c.seed, progress_callback(console, "dpo", a.steps), None)
    merge(str(sft), adapter, a.out / "dpo-merged")
    sets = profile_sets(c.profile_limit, c.beside_limit, c.seed, console)
    models = {f"x{d}": RoleConfig(model=str(scaled(Path(embedded_llm_dir()), a.out / "dpo-merged", d, a.out / f"x{d}")))
              for d in a.doses}
    result = measure(models, sets, c, roles, a.out, console)
    (a.out / "profile.json").write_text(json.dumps([r.to_json() for r in result], indent=1))
    print(report(result, sets, list(models)))


if __name__ == "__main__":
    main()
