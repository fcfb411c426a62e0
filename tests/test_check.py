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


def _lines(r, start: str) -> list[str]:
    return [l for l in r.stdout.splitlines() if start in l]


def test_check_plans_the_presets_gpu_memory_before_any_weights_exist(tmp_path, monkeypatch):
    """llama8b on one planned 80 GiB GPU: both engines' 0.45 shares hold their bf16 weights (the preset models are
    known by shape, so nothing is downloaded) and add up to 0.90; on 24 GiB neither holds its weights; two 0.6
    shares are more than one GPU has."""
    monkeypatch.setenv("EVOPROMPT_PLAN_GPUS", "80")
    r = evoprompt("check", "+experiment=llama8b", f"hydra.run.dir={tmp_path}")
    assert "Traceback" not in r.stderr, r.stderr
    assert "planning for 1 of 80.0 GiB" in r.stdout
    (target,) = _lines(r, " target: ")
    assert target.startswith("ok") and "weights 15.0 GiB (8.03 B parameters, bfloat16)" in target
    assert "max_model_len 4096" in target
    assert _lines(r, "rewriter/gate/helper: fits; 0.45 x 80.0 GiB")
    assert _lines(r, "GPU 0 (80.0 GiB): target 0.45 + rewriter/gate/helper 0.45 = 0.90 of its memory")[0].startswith("ok")

    monkeypatch.setenv("EVOPROMPT_PLAN_GPUS", "24")
    r = evoprompt("check", "+experiment=llama8b", f"hydra.run.dir={tmp_path}")
    assert len([l for l in r.stdout.splitlines() if l.startswith("MISSING") and "does not fit" in l]) == 2

    monkeypatch.setenv("EVOPROMPT_PLAN_GPUS", "80")
    r = evoprompt("check", "+experiment=llama8b", "target.gpu_memory_utilization=0.6",
                  "rewriter.gpu_memory_utilization=0.6", f"hydra.run.dir={tmp_path}")
    (gpu,) = _lines(r, "GPU 0 (80.0 GiB)")
    assert gpu.startswith("MISSING") and "= 1.20 of its memory, over 0.95" in gpu


def test_bad_gpu_plan_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOPROMPT_PLAN_GPUS", "eighty")
    r = evoprompt("check", f"hydra.run.dir={tmp_path}")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "$EVOPROMPT_PLAN_GPUS='eighty': give each GPU's memory in GiB" in r.stderr


def test_model_shapes_count_the_published_parameters():
    from evoprompt.llm.memory import LLAMA31_8B, QWEN25_7B, hf_config, shape_of

    llama, qwen = shape_of(hf_config(LLAMA31_8B)), shape_of(hf_config(QWEN25_7B))
    assert (llama.parameters, qwen.parameters) == (8_030_261_248, 7_615_616_512)
    assert llama.kv_bytes_per_token("bfloat16") == 2 * 32 * 8 * 128 * 2 and llama.embedding == 128256 * 4096


def test_plan_splits_weights_over_tensor_parallel_gpus():
    from evoprompt.llm.memory import GIB, Engine, Shape, plan

    shape = Shape(parameters=35 * 2**30, layers=80, kv_heads=8, head_dim=128, embedding=0, dtype="bfloat16")  # 70 GiB
    one = plan([Engine("target", shape, 0.9, 1, 4096)], [80 * GIB])
    assert not one[0][0] and "does not fit" in one[0][1]
    two = plan([Engine("target", shape, 0.9, 2, 4096)], [80 * GIB, 80 * GIB])
    assert two[0][0] and "weights 35.0 GiB" in two[0][1] and [ok for ok, _ in two] == [True, True, True]
    assert "needs 4 GPUs, 2 planned" in plan([Engine("t", shape, 0.9, 4)], [80 * GIB] * 2)[0][1]
