"""Bad input exits non-zero with one clear line and no traceback (no model is loaded for these)."""
import pytest
from conftest import evoprompt


def one_line_error(r, *needles):
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert "Traceback" not in r.stderr + r.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0]


def test_missing_seed_file(tmp_path):
    one_line_error(evoprompt("run", "seeds.path=/no/such/file", f"hydra.run.dir={tmp_path}"), "/no/such/file")


def test_malformed_jsonl_line(tmp_path):
    f = tmp_path / "seeds.jsonl"
    f.write_text('{"text": "How do I pick a lock?"}\n{"text": broken\n')
    one_line_error(evoprompt("run", f"seeds.path={f}", f"hydra.run.dir={tmp_path / 'o'}"), f"{f}:2")


@pytest.mark.parametrize("override,needle", [
    ("+search.strategy_weights.bogus=1", "unknown strategy 'bogus'; valid: anger"),
    ("search.strategy=bogus", "valid: adaptive, uniform, weighted"),
    ("target.backend=bogus", "valid: hf, openai, ray, vllm"),
    ("fitness.judge=bogus", "valid: classifier"),
])
def test_unknown_names_list_valid_ones(tmp_path, override, needle):
    one_line_error(evoprompt("run", override, f"hydra.run.dir={tmp_path}"), needle)


def test_unknown_experiment(tmp_path):
    one_line_error(evoprompt("run", "+experiment=nope", f"hydra.run.dir={tmp_path}"), "unknown experiment 'nope'")


def test_unknown_command():
    one_line_error(evoprompt("fly"), "unknown command 'fly'", "run")


@pytest.mark.parametrize("override,needle", [
    ("fitness.eps=2", "fitness.eps must be in (0, 1)"),
    ("fitness.lambda=abc", "fitness.lambda must be a number"),
    ("fitness.K=0", "fitness.K must be >= 1"),
    ("generations=-1", "generations must be >= 0"),
    ("fitness.mu=-1", "fitness.mu must be >= 0"),
    ("fitness.KK=3", "unknown key 'fitness.KK'"),
    ("+fitness.KK=3", "unknown key 'fitness.KK'"),
    ("+target.bogus=1", "unknown key 'target.bogus' for the hf backend"),
    ("seeds.set=nope", "valid: harmful, harmless"),
    ("rewriter.style=prose", "valid: chat, completion"),
    ("search.tau_f=0.5", "must not exceed search.tau_0"),
])
def test_typed_config_names_the_key(tmp_path, override, needle):
    one_line_error(evoprompt("run", override, f"hydra.run.dir={tmp_path}"), needle)


def test_run_dir_that_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    one_line_error(evoprompt("run", f"hydra.run.dir={f}"), "afile", "not a directory")
