"""VLLMBackend against the HF reference on the embedded model (float32 both). One engine for the module:
it takes ~45 s to start on 2 cores."""
import pytest

from evoprompt.llm.base import BackendError, Decoding

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

CHATS = [[{"role": "user", "content": "Say hi."}],
         [{"role": "system", "content": "Answer in one short sentence."},
          {"role": "user", "content": "What is the capital of France?"}]]
DEC = Decoding(temperature=0.8, top_p=0.95, max_new_tokens=16)
TOL = 0.05  # mean absolute log-prob difference per token


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("vllm")
    from evoprompt.llm.vllm_backend import VLLMBackend

    backend = VLLMBackend("embedded", max_model_len=1024, enforce_eager=True)
    yield backend
    backend.llm.llm_engine.engine_core.shutdown()  # free the cores before the next module's engine


@pytest.fixture(scope="module")
def hf():
    from evoprompt.llm.hf import HFBackend

    return HFBackend("embedded")


@pytest.fixture(scope="module")
def sampled(engine):
    return engine.generate(CHATS, 2, DEC, seed=7)


def test_generate_logprobs_match_hf_score(sampled, hf):
    assert [len(s) for s in sampled] == [2, 2]
    for chat, samples in zip(CHATS, sampled):
        for s in samples:
            assert 0 < s.n_tokens <= DEC.max_new_tokens and all(lp <= 0 for lp in s.token_logprobs)
            # a finished sample carries its EOS token last; HF scores it when it follows the text
            finished = s.n_tokens == len(hf.tok(s.text, add_special_tokens=False)["input_ids"]) + 1
            ref = hf.score([chat], [s.text + hf.tok.eos_token if finished else s.text])[0]
            assert ref.n_tokens == s.n_tokens
            assert abs(s.logprob - ref.logprob) / s.n_tokens < TOL
    assert any(a.text != b.text for a, b in sampled)


def test_samples_depend_only_on_chat_seed_and_index(engine, sampled):
    again = engine.generate([CHATS[1], [{"role": "user", "content": "Count to three."}], CHATS[0]], 2, DEC, seed=7)
    for before, after in zip(sampled, [again[2], again[0]]):
        assert [s.text for s in after] == [s.text for s in before]
        for a, b in zip(after, before):
            assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
    other = engine.generate(CHATS, 2, DEC, seed=8)
    assert [s.text for c in other for s in c] != [s.text for c in sampled for s in c]
    greedy = engine.generate(CHATS[:1], 2, Decoding(temperature=0.0, max_new_tokens=8), seed=7)[0]
    assert greedy[0].text == greedy[1].text


def test_score_matches_hf(engine, hf):
    responses = ["Hello! How can I help you today?", "Paris.", ""]
    chats = [CHATS[0], CHATS[1], CHATS[1]]
    got, ref = engine.score(chats, responses), hf.score(chats, responses)
    for g, r, text in zip(got, ref, responses):
        assert g.text == text and g.n_tokens == r.n_tokens
        assert g.token_logprobs == pytest.approx(r.token_logprobs, abs=TOL)
    assert got[2].token_logprobs == []


def test_load_failure_is_one_line(tmp_path):
    from evoprompt.llm.vllm_backend import VLLMBackend

    with pytest.raises(BackendError, match="cannot load model") as err:
        VLLMBackend(str(tmp_path))
    assert "\n" not in str(err.value)
