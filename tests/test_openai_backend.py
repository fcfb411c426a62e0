"""OpenAIBackend against a real vLLM OpenAI-compatible server (CPU) serving the embedded model; one
server for the module, killed and restarted once to check that retries carry requests across it."""
import threading
import time

import pytest

from evoprompt.llm.base import BackendError, Decoding
from evoprompt.llm.openai_backend import OpenAIBackend
from evoprompt.llm.serve import VLLMServer, free_port


def slow_vllm(test):  # only the tests that need the server; the others run in a second
    return pytest.mark.vllm(pytest.mark.slow(test))


CHATS = [[{"role": "user", "content": "Say hi."}],
         [{"role": "user", "content": "What is the capital of France?"}]]
DEC = Decoding(temperature=0.8, max_new_tokens=12)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("vllm")
    srv = VLLMServer(tmp_path_factory.mktemp("vllm") / "server.log")
    srv.start()
    try:
        srv.wait_healthy()
        yield srv
    finally:
        srv.stop()


def test_unreachable_server_gives_up_after_bounded_retries():
    backend = OpenAIBackend("embedded", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2, backoff=0.01,
                            supports_logprobs=True)
    with pytest.raises(BackendError, match="gave up after 3 tries"):
        backend.generate(CHATS, 1, DEC, seed=0)


def test_score_needs_a_local_tokenizer():
    backend = OpenAIBackend("some/remote-model", base_url="http://127.0.0.1:9/v1", supports_logprobs=True)
    with pytest.raises(BackendError, match="needs the tokenizer"):
        backend.score(CHATS, ["Hi."])


@pytest.fixture(scope="module")
def backend(server):
    return OpenAIBackend("embedded", base_url=server.url)


@slow_vllm
def test_generate_returns_logprobs(backend):
    assert backend.supports_logprobs
    out = backend.generate(CHATS, 2, DEC, seed=3)
    assert [len(s) for s in out] == [2, 2]
    for s in (s for samples in out for s in samples):
        assert s.text and 0 < s.n_tokens <= DEC.max_new_tokens and all(lp <= 0 for lp in s.token_logprobs)
    assert backend.generate(CHATS[:1], 2, DEC, seed=3)[0][1].text == out[0][1].text


@slow_vllm
def test_score_matches_generation_logprobs(backend):
    samples = backend.generate(CHATS, 1, DEC, seed=5)
    scored = backend.score(CHATS, [s[0].text for s in samples])
    for (s,), sc in zip(samples, scored):
        # generation may add a final EOS token; the scored tokens are the text's own
        assert sc.n_tokens in (s.n_tokens, s.n_tokens - 1)
        assert sc.token_logprobs == pytest.approx(s.token_logprobs[:sc.n_tokens], abs=0.05)


@slow_vllm
def test_round_robin_retries_on_the_next_endpoint(server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend("embedded", base_urls=[dead, server.url], max_concurrency=1, max_retries=1,
                            backoff=0.01)
    assert all(len(s) == 1 for s in backend.generate(CHATS * 2, 1, DEC, seed=0))


@slow_vllm
def test_requests_survive_a_server_restart(server):
    """Kill the server while a batch is in flight and start it again: every request completes once."""
    # the backoff (capped at 4 s, jittered) spans several minutes over 100 tries: enough for a restart
    backend = OpenAIBackend("embedded", base_url=server.url, max_concurrency=2, max_retries=100, backoff=0.5,
                            max_backoff=4.0, timeout=120.0)
    chats = [[{"role": "user", "content": f"Write a short sentence about the number {i}."}] for i in range(8)]
    greedy = Decoding(temperature=0.0, max_new_tokens=16)
    expected = backend.generate(chats, 1, greedy, seed=0)

    completed, call = [], backend._call
    backend._call = lambda request, *a, **kw: completed.append(call(request, *a, **kw)) or completed[-1]
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=backend.generate(chats, 1, greedy, seed=0)))
    worker.start()
    while not completed and worker.is_alive():
        time.sleep(0.05)
    assert worker.is_alive(), "the batch finished before the server could be killed"
    server.stop()
    done_before_restart = len(completed)
    server.start()
    worker.join(timeout=420)
    assert not worker.is_alive()
    server.wait_healthy()

    assert done_before_restart < len(chats)
    assert len(completed) == len(chats) and len({r.id for r in completed}) == len(chats)
    assert [s[0].text for s in result["out"]] == [s[0].text for s in expected]
