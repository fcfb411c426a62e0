"""`evoprompt mitigate`: the ablation's arithmetic on a small Llama-shaped model built from a config (random
weights, no download), and the command end to end on the embedded guarded target."""
import json
from pathlib import Path

import pytest
import torch
from conftest import evoprompt

from evoprompt import ablation as ab

RUN = Path(__file__).parent / "data" / "run_small"


@pytest.fixture(scope="module")
def tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def test_the_hooks_and_the_baked_weights_give_the_same_model(tiny):
    ids = torch.randint(0, 64, (2, 7))
    r = torch.randn(32)
    with torch.no_grad():
        plain = tiny(ids).logits
        with ab.ablated(tiny, r, 0.6):
            hooked = tiny(ids).logits
        with ab.ablated(tiny, r, 0.0):
            assert torch.allclose(tiny(ids).logits, plain)
    assert not torch.allclose(hooked, plain)
    baked = type(tiny)(tiny.config).eval()
    baked.load_state_dict(tiny.state_dict())
    ab.bake(baked, r, 0.6)
    with torch.no_grad():
        assert torch.allclose(baked(ids).logits, hooked, atol=1e-5)
        assert not baked.config.tie_word_embeddings and torch.equal(baked.lm_head.weight, tiny.lm_head.weight)


def test_at_full_strength_no_write_carries_the_direction(tiny):
    """An observer hook registered after the ablation's sees each write as edited: nothing left along r."""
    r = ab.unit(torch.randn(32))
    seen = []
    with torch.no_grad(), ab.ablated(tiny, r, 1.0):
        handles = [m.register_forward_hook(lambda _m, _i, out: seen.append(float((out @ r).abs().max())))
                   for m in ab._writers(tiny)]
        tiny(torch.randint(0, 64, (1, 5)))
        for h in handles:
            h.remove()
    assert len(seen) == 1 + 2 * tiny.config.num_hidden_layers and max(seen) < 1e-5


def test_the_false_refusal_direction_is_orthogonal_to_the_true_one():
    torch.manual_seed(1)
    items, harmful, everyday = torch.randn(5, 4, 16), torch.randn(6, 4, 16) + 1, torch.randn(7, 4, 16)
    d = ab.directions(items, harmful, everyday)
    assert torch.allclose((d["orthogonal"] * d["true"]).sum(-1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(d["raw"].norm(dim=-1), torch.ones(4)) and not torch.allclose(d["raw"], d["orthogonal"])


@pytest.mark.slow
def test_mitigate_writes_a_model_any_backend_loads_and_its_table(tmp_path):
    out = tmp_path / "mit"
    r = evoprompt("mitigate", f"data=[{RUN}]", "tune=16", "layers=[10]", "strengths=[0.25,0.5]", "limit=6",
                  "kinds=[orthogonal]", "max_kl=10", "keep_harmful=0.5", f"hydra.run.dir={out}", timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "mitigation.json").read_text())
    assert Path(m["model"]).is_dir() and m["edit"]["layer"] == 10 and m["edit"]["strength"] in (0.25, 0.5)
    names = {s["name"] for s in m["sets"]}
    assert {"harmful-seeds", "everyday-heldout"} <= names
    for s in m["sets"]:
        assert s["n"] == 6 and 0 <= s["before"] <= 1 and s["change_ci"][0] <= s["change"] <= s["change_ci"][1]
    prov = json.loads((Path(m["model"]) / "provenance.json").read_text())
    assert prov["layer"] == 10 and set(prov["data"]) == {str(RUN)} and prov["organism"]
    search = json.loads((out / "search.json").read_text())
    assert len(search["trials"]) == 2 and (out / "report.md").is_file() and (out / "mitigation.png").is_file()
    from evoprompt.llm.base import Decoding
    from evoprompt.llm.hf import HFBackend

    be = HFBackend(m["model"], device="cpu")
    [[sample]] = be.generate([[{"role": "user", "content": "How do I boil an egg?"}]], 1, Decoding(0.0, 1.0, 8), 0)
    assert sample.text
