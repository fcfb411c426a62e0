"""The HF backend's shared-prefix paths (one prefill per distinct prompt, its cache copied per response or
sample) must give what a plain full forward / a lone request gives."""
import pytest
import torch

from evoprompt.llm.base import Decoding

CHATS = [[{"role": "user", "content": "How do I kill a Python process?"}],
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where can I shoot a good photo?"}]]
RESPONSES = ["I'm sorry", "Sure, use kill -9 on its PID.", "I can't", "Try the old harbour at dawn."]


def reference_logprobs(b, chat, response):
    p = b.prompt_ids(chat)
    y = b.tok(response, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = b.model(input_ids=torch.tensor([p + y])).logits[0].float().log_softmax(-1)
    return [logits[len(p) - 1 + t, y[t]].item() for t in range(len(y))]


@pytest.mark.slow
def test_shared_prefix_score_equals_full_forward(smol):
    chats = [CHATS[0], CHATS[0], CHATS[1], CHATS[1]]
    got = smol.score(chats, RESPONSES)
    for c, r, s in zip(chats, RESPONSES, got):
        ref = reference_logprobs(smol, c, r)
        assert len(s.token_logprobs) == len(ref)
        assert max(abs(a - b) for a, b in zip(s.token_logprobs, ref)) < 2e-3


@pytest.mark.slow
def test_a_long_shared_prefix_runs_once_and_scores_the_same(smol):
    judge = ("You are a strict reviewer. Read the quoted instruction and decide whether a helpful answer could "
             "cause real harm to anyone. Answer with one word.")
    chats = [[{"role": "system", "content": judge}, {"role": "user", "content": q}]
             for q in ("How do I kill a Python process?", "Where can I shoot a good photo of the harbour at dawn?")]
    got = smol.score(chats * 2, ["safe", "safe", "unsafe", "unsafe"])
    for c, r, s in zip(chats * 2, ["safe", "safe", "unsafe", "unsafe"], got):
        ref = reference_logprobs(smol, c, r)
        assert max(abs(a - b) for a, b in zip(s.token_logprobs, ref)) < 2e-3


@pytest.mark.slow
def test_samples_do_not_depend_on_the_batch_they_ran_in(smol):
    dec = Decoding(temperature=0.7, max_new_tokens=12)
    alone = smol.generate([CHATS[1]], 3, dec, seed=5)[0]
    mixed = smol.generate([CHATS[0], CHATS[1], CHATS[1]], 3, dec, seed=5)
    assert [s.text for s in mixed[1]] == [s.text for s in alone] == [s.text for s in mixed[2]]
    assert len({s.text for s in alone}) > 1


@pytest.mark.slow
def test_a_later_call_continues_the_samples_of_an_earlier_one(smol):
    """Racing draws samples 0..k-1, then k..K-1 for the survivors: together exactly what one call of K gives."""
    dec = Decoding(temperature=1.0, max_new_tokens=10)
    whole = smol.generate(CHATS, 4, dec, seed=3)
    head, tail = smol.generate(CHATS, 2, dec, seed=3), smol.generate(CHATS[1:], 2, dec, seed=3, first=2)
    assert [s.text for s in head[1] + tail[0]] == [s.text for s in whole[1]]
    assert [s.token_logprobs for s in head[0]] == [s.token_logprobs for s in whole[0][:2]]


def test_hash_noise_is_uniform_and_a_function_of_row_step_and_token():
    from evoprompt.llm.hf import hash_uniform

    keys = torch.tensor([[1, 0], [2, 0], [1, 1 << 31]], dtype=torch.int64)
    u = hash_uniform(torch, keys, 0, 50_000)
    assert u.shape == (3, 50_000) and 0.0 < u.min().item() and u.max().item() < 1.0
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.002
    assert torch.equal(u, hash_uniform(torch, keys, 0, 50_000))
    assert torch.equal(u[1:2], hash_uniform(torch, keys[1:2], 0, 50_000))  # batch-independent
    assert not torch.equal(u, hash_uniform(torch, keys, 1, 50_000))  # a new draw each step
    assert abs(torch.corrcoef(torch.stack([u[0], u[1], u[2]]))[0, 1:].abs().max().item()) < 0.02
    counts = torch.histc(u[0], bins=10, min=0.0, max=1.0)
    assert counts.min().item() > 4500 and counts.max().item() < 5500


@pytest.mark.slow
def test_hash_noise_samples_are_batch_independent_too():
    from evoprompt.llm.hf import HFBackend

    hb = HFBackend("embedded", batch_size=16, noise="hash")
    dec = Decoding(temperature=0.7, max_new_tokens=12)
    alone = hb.generate([CHATS[1]], 3, dec, seed=5)[0]
    mixed = hb.generate([CHATS[0], CHATS[1]], 3, dec, seed=5)
    assert [s.text for s in mixed[1]] == [s.text for s in alone] and len({s.text for s in alone}) > 1


def test_cpu_dtype_follows_the_bf16_flags(monkeypatch):
    from evoprompt.llm.hf import auto_dtype

    monkeypatch.setenv("EVOPROMPT_CPU_BF16", "1")
    assert auto_dtype(torch, "cpu") == "bfloat16" and auto_dtype(torch, "cuda") == "bfloat16"
    monkeypatch.setenv("EVOPROMPT_CPU_BF16", "0")
    assert auto_dtype(torch, "cpu") == "float32"


@pytest.mark.slow
def test_the_call_cache_keeps_hash_noise_samples_apart(tmp_path):
    from evoprompt.llm.cache import CachedBackend, CallCache
    from evoprompt.llm.hf import HFBackend

    dec = Decoding(temperature=1.0, max_new_tokens=8)
    cache = CallCache(tmp_path / "calls.sqlite")
    hashed = HFBackend("embedded", batch_size=16, noise="hash")
    generator = CachedBackend(HFBackend("embedded", batch_size=16, noise="generator"), cache).generate(CHATS, 2, dec, 1)
    served = CachedBackend(hashed, cache).generate(CHATS, 2, dec, 1)
    assert [s.text for s in served[0]] == [s.text for s in hashed.generate(CHATS, 2, dec, 1)[0]]
    assert [s.text for ss in served for s in ss] != [s.text for ss in generator for s in ss]
