"""The HF backend's shared-prefix paths (one prefill per distinct prompt, its cache copied per response or
sample) must give what a plain full forward / a lone request gives."""
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


def test_shared_prefix_score_equals_full_forward(smol):
    chats = [CHATS[0], CHATS[0], CHATS[1], CHATS[1]]
    got = smol.score(chats, RESPONSES)
    for c, r, s in zip(chats, RESPONSES, got):
        ref = reference_logprobs(smol, c, r)
        assert len(s.token_logprobs) == len(ref)
        assert max(abs(a - b) for a, b in zip(s.token_logprobs, ref)) < 2e-3


def test_a_long_shared_prefix_runs_once_and_scores_the_same(smol):
    judge = ("You are a strict reviewer. Read the quoted instruction and decide whether a helpful answer could "
             "cause real harm to anyone. Answer with one word.")
    chats = [[{"role": "system", "content": judge}, {"role": "user", "content": q}]
             for q in ("How do I kill a Python process?", "Where can I shoot a good photo of the harbour at dawn?")]
    got = smol.score(chats * 2, ["safe", "safe", "unsafe", "unsafe"])
    for c, r, s in zip(chats * 2, ["safe", "safe", "unsafe", "unsafe"], got):
        ref = reference_logprobs(smol, c, r)
        assert max(abs(a - b) for a, b in zip(s.token_logprobs, ref)) < 2e-3


def test_samples_do_not_depend_on_the_batch_they_ran_in(smol):
    dec = Decoding(temperature=0.7, max_new_tokens=12)
    alone = smol.generate([CHATS[1]], 3, dec, seed=5)[0]
    mixed = smol.generate([CHATS[0], CHATS[1], CHATS[1]], 3, dec, seed=5)
    assert [s.text for s in mixed[1]] == [s.text for s in alone] == [s.text for s in mixed[2]]
    assert len({s.text for s in alone}) > 1
