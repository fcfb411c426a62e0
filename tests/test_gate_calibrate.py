"""`evoprompt gate-calibrate`: metrics on known scores, bad input as one line, and (slow) a small real run."""
import json

import numpy as np
import pytest
from conftest import evoprompt
from omegaconf import OmegaConf

from evoprompt.commands import gate_calibrate as gc
from evoprompt.errors import UserError
from evoprompt.public_sets import DATA_ENV, available


def test_threshold_reaches_the_target_recall_and_no_more():
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    y = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    t = gc.recall_threshold(p, y, 0.75)
    assert 0.4 < t < 0.5  # rejects 0.1, 0.2, 0.4: three of the four unsafe
    s = gc.summarise(list(p), list(y), 0.5, 0.75)
    assert s.for_target_recall.unsafe_recall == 0.75 and s.for_target_recall.safe_pass_rate == 0.75
    assert s.configured.unsafe_recall == 0.75 and s.auroc == pytest.approx(0.8125)
    assert s.n == 8 and s.n_unsafe == 4 and s.configured.confusion == [[3, 1], [1, 3]]


def test_one_class_has_no_auroc():
    s = gc.summarise([0.9, 0.8], [0, 0], 0.5, 0.9)
    s.gate, s.data = {"backend": "hf", "model": "m", "mode": "logprob", "prompt": "gate.txt"}, ["f"]
    assert s.auroc is None and s.for_target_recall is None and "n/a" in gc.markdown(s)


def test_limit_draws_both_classes():
    rows = [(f"s{i}", 0) for i in range(10)] + [(f"u{i}", 1) for i in range(10)]
    sample = gc.balanced_sample(rows, 4, 0)
    assert sorted(y for _, y in sample) == [0, 0, 1, 1] and sample == gc.balanced_sample(rows, 4, 0)


def test_labelled_files(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"prompt": "x", "label": "harmful"}\n{"prompt": "y", "label": 0}\n')
    assert gc.read_labelled(tmp_path / "a.jsonl", "prompt", "label") == [("x", 1), ("y", 0)]
    (tmp_path / "b.csv").write_text("prompt,label\nx,maybe\n")
    with pytest.raises(UserError, match="row 1: label 'maybe'"):
        gc.read_labelled(tmp_path / "b.csv", "prompt", "label")


@pytest.mark.parametrize("data_folder", ["empty", "unset"])
def test_missing_xstest_is_one_clear_error(tmp_path, monkeypatch, data_folder):
    if data_folder == "unset":
        monkeypatch.delenv(DATA_ENV, raising=False)
    else:
        monkeypatch.setenv(DATA_ENV, str(tmp_path))  # a data folder without a copy of XSTest
    cfg = OmegaConf.create({"data": [], "limit": None, "target_recall": 0.9})
    with pytest.raises(UserError, match=rf"give data=.*set {DATA_ENV} .*XSTest") as e:
        gc.main(cfg, tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content,pattern", [(None, "not found"), ("prompt,type\nhello,x\n", "no 'label'"),
                                             ("", "no rows")])
def test_bad_input_exits_with_one_line(tmp_path, content, pattern):
    path = tmp_path / "labelled.csv"
    if content is not None:
        path.write_text(content)
    r = evoprompt("gate-calibrate", f"data=[{path}]", f"hydra.run.dir={tmp_path / 'out'}", timeout=300)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode != 0 and "Traceback" not in out and len(out.splitlines()) == 1 and pattern in out, out


@pytest.mark.slow
def test_small_real_calibration_writes_auroc(tmp_path):
    if not available("data:xstest"):
        pytest.skip("shared XSTest data absent")
    r = evoprompt("gate-calibrate", "limit=6", f"hydra.run.dir={tmp_path}", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "AUROC" in r.stdout
    result = json.loads((tmp_path / "gate_calibration.json").read_text())
    assert result["n"] == 6 and result["n_unsafe"] == 3 and 0.0 <= result["auroc"] <= 1.0
    assert all(0.0 <= it["p_safe"] <= 1.0 for it in result["items"])
    assert "AUROC" in (tmp_path / "gate_calibration.md").read_text()
