"""`evoprompt check` and presets on a CPU-only machine."""
import pytest

from conftest import evoprompt


def cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def test_llama8b_config_resolves_without_gpu():
    r = evoprompt("run", "+experiment=llama8b", "--cfg", "job")
    assert r.returncode == 0, r.stderr
    assert "meta-llama/Llama-3.1-8B-Instruct" in r.stdout and "backend: vllm" in r.stdout


@pytest.mark.skipif(cuda_visible(), reason="this machine has a GPU")
def test_check_lists_missing_gpu_and_weights(tmp_path):
    r = evoprompt("check", "+experiment=llama8b", f"hydra.run.dir={tmp_path}")
    assert r.returncode != 0
    assert "Traceback" not in r.stdout + r.stderr
    missing = [l for l in r.stdout.splitlines() if l.startswith("MISSING")]
    assert any("no NVIDIA GPU" in l for l in missing)
    assert any("weights of meta-llama/Llama-3.1-8B-Instruct not found" in l for l in missing)


def test_check_passes_for_the_embedded_default(tmp_path):
    r = evoprompt("check", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all checks passed" in r.stdout


def test_check_names_unreachable_server(tmp_path):
    r = evoprompt("check", "rewriter.backend=openai", "rewriter.style=chat", "+rewriter.base_url=http://127.0.0.1:9/v1",
                  f"hydra.run.dir={tmp_path}")
    assert r.returncode != 0 and "not answering" in r.stdout and "Traceback" not in r.stderr
