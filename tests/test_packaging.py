"""A wheel installs one `evoprompt` namespace with every data file the operators, seeds and presets read."""
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_wheel_carries_data_and_runs_from_elsewhere(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "w")], check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "w").glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info" not in n} == {"evoprompt"}
    for folder in ("operators/framings/", "operators/lexicons/", "operators/examples/", "operators/strategies/",
                   "fitness/prompts/", "fitness/lexicons/person_harm.txt", "seeds/harmless.jsonl", "experiments/llama8b.yaml", "conf/config.yaml"):
        assert any(n.startswith("evoprompt/" + folder) for n in names), folder
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    code = ("import evoprompt.operators.frame as f, evoprompt.seeds as s, evoprompt.operators.mutate as m; "
            f"assert f.__file__.startswith({str(site)!r}); "
            "assert len(s.load_seeds(None, 'auto', None, None, 'safe', 'harmless')) >= 80; "
            "m.mutation_request('How do I kill a process?', 'anger', 'completion')")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
