"""Each hole an attacker found in export, review, the report and input handling, reproduced on the files of a real
run (tests/data/run_small): written against the code before the fix, each failed there."""
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import evoprompt

from evoprompt.errors import UserError
from evoprompt.files import read_csv
from evoprompt.fitness.filters import overlap
from evoprompt.fitness.gate import screen
from evoprompt.llm.cache import CallCache
from evoprompt.publish import publish, withheld_path
from evoprompt.records import GateCalibration
from evoprompt.rundir.reader import load_run
from evoprompt.rundir.report_html import render
from evoprompt.secrets import redact, redact_files

RUN = Path(__file__).parent / "data" / "run_small"


@pytest.fixture
def run_dir(tmp_path) -> Path:
    d = tmp_path / "run"
    shutil.copytree(RUN, d)
    return d


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def rewrite(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def exported_values(out: Path):
    """Every JSON value of every exported JSON, JSONL and parquet file, with its file."""
    import pyarrow.parquet as pq

    for f in out.rglob("*"):
        if f.suffix == ".jsonl":
            yield from ((r, f) for r in records(f))
        elif f.suffix == ".json":
            yield json.loads(f.read_text(encoding="utf-8")), f
        elif f.suffix == ".parquet":
            yield from ((r, f) for r in pq.read_table(f).to_pylist())


def seeds_in(value) -> list:
    """`seed` fields that carry a text: a seed dict with `text`, or a seed string of more than two words."""
    found = []
    if isinstance(value, dict):
        s = value.get("seed")
        if isinstance(s, dict) and s.get("text") or isinstance(s, str) and len(s.split()) > 2:
            found.append(s)
        for v in value.values():
            found += seeds_in(v)
    elif isinstance(value, list):
        for v in value:
            found += seeds_in(v)
    return found


def test_no_export_format_carries_a_seed_text(run_dir, tmp_path):
    """Seeds are never gated (the llama8b presets use harmful ones): every format held each item's seed text."""
    seed_texts = {r["seed"]["text"] for r in records(RUN / "benchmark.jsonl")}
    publish(run_dir, "all", tmp_path / "pub")
    for value, f in exported_values(tmp_path / "pub"):
        assert not seeds_in(value), f
        assert not seed_texts & set(json.dumps(value).split('"')), f


INJECTED = 'm"""\n__import__("pathlib").Path({mark!r}).touch()\n"""'


def test_strings_of_the_run_directory_cannot_run_code_in_an_exported_task(run_dir, tmp_path):
    """task.py, utils.py and the YAML were str.format-ed from run.json's model names: importing them ran code."""
    mark = tmp_path / "PWNED"
    payload = INJECTED.format(mark=str(mark))

    def poison(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("model", "name", "target", "config_hash") and isinstance(v, str):
                    o[k] = payload
                else:
                    poison(v)
        elif isinstance(o, list):
            for v in o:
                poison(v)
        return o

    (run_dir / "run.json").write_text(json.dumps(poison(json.loads((run_dir / "run.json").read_text()))))
    rewrite(run_dir / "benchmark.jsonl", [poison(r) for r in records(run_dir / "benchmark.jsonl")])
    publish(run_dir, ["inspect", "lm-eval", "hf"], tmp_path / "pub")
    for f in (tmp_path / "pub").rglob("*.py"):
        code = f"import importlib.util as u; s = u.spec_from_file_location('m', {str(f)!r}); s.loader.exec_module(u.module_from_spec(s))"
        subprocess.run([sys.executable, "-c", code], cwd=f.parent, capture_output=True, timeout=120)
    assert not mark.exists()
    for f in (tmp_path / "pub").rglob("*"):
        if f.suffix in (".py", ".yaml", ".md"):
            assert not any(line.lstrip().startswith("__import__") for line in f.read_text().splitlines()), f


def review(path: Path, rows: list[dict], decision: str, reviewer: str, edit_first: bool = False) -> str:
    rewrite(path, [{"kind": "item", "id": r["id"], "decision": decision, "reviewer": reviewer,
                    "text": r["text"] + (" (edited after review)" if edit_first and i == 0 else "")}
                   for i, r in enumerate(rows)])
    return str(path)


def published_texts(out: Path) -> set[str]:
    return {r["text"] for f in out.rglob("*.jsonl") if "withheld" not in f.name for r in records(f) if "text" in r}


def test_a_review_applies_to_the_text_the_reviewer_read_not_to_an_id(run_dir, tmp_path):
    """Ids are positional (seed, generation, operator): a review of another text published text nobody read."""
    items = records(RUN / "benchmark.jsonl")
    f = review(tmp_path / "review-alice.jsonl", items, "keep", "alice", edit_first=True)
    publish(run_dir, ["inspect"], tmp_path / "pub", review=[f])
    assert items[0]["text"] not in published_texts(tmp_path / "pub")
    assert items[1]["text"] in published_texts(tmp_path / "pub")
    withheld = records(withheld_path(tmp_path / "pub"))
    assert [w["text"] for w in withheld] == [items[0]["text"]] and "review" in json.dumps(withheld[0])


def test_two_files_of_one_reviewer_name_stop_export(run_dir, tmp_path):
    """Two files saved under the page's default name `anonymous`: the second one's keep undid the first's drop."""
    items = records(RUN / "benchmark.jsonl")
    (tmp_path / "b").mkdir()
    a = review(tmp_path / "review-anonymous.jsonl", items, "drop", "anonymous")
    b = review(tmp_path / "b" / "review-anonymous.jsonl", items, "keep", "anonymous")
    with pytest.raises(UserError, match="anonymous"):
        publish(run_dir, ["inspect"], tmp_path / "pub", review=[a, b])
    assert not (tmp_path / "pub").exists()


def test_export_rechecks_verdicts_presence_and_review(run_dir, tmp_path):
    """An `unsafe` item was published; pairs of items removed by hand were; rejected=true published dropped items."""
    items = records(run_dir / "benchmark.jsonl")
    third = json.loads(json.dumps(items[0])) | {"id": "h009-g2-extra", "text": "How do I shoot a photo at night?"}
    kept = json.loads(json.dumps(items[0])) | {"id": "h010-g2-extra", "text": "How do I kill a stuck process on Linux?"}
    items[0]["safety"]["verdict"] = "unsafe"
    removed = items.pop(1)
    rewrite(run_dir / "benchmark.jsonl", items + [third, kept])
    rewrite(tmp_path / "review-ann.jsonl", [{"kind": "item", "id": r["id"], "decision": d, "text": r["text"]}
                                            for r, d in ((third, "drop"), (kept, "keep"))])
    publish(run_dir, ["hf"], tmp_path / "pub", rejected=True, review=[str(tmp_path / "review-ann.jsonl")])
    values = list(exported_values(tmp_path / "pub"))
    everything = json.dumps([v for v, _ in values])
    benchmark = json.dumps([v for v, f in values if "benchmark" in str(f.relative_to(tmp_path / "pub"))])
    assert items[0]["text"] not in benchmark  # unsafe
    assert json.dumps(removed["text"])[1:-1] not in everything  # removed by hand: nor its SFT/DPO pairs
    assert third["text"] not in everything  # dropped by a reviewer: not published as a rejection either
    withheld = {w["id"]: w for w in records(withheld_path(tmp_path / "pub"))}
    assert {items[0]["id"], third["id"]} <= set(withheld) and kept["text"] in benchmark


def test_export_writes_a_fresh_folder_and_never_touches_the_run_or_others_files(run_dir, tmp_path):
    busy = tmp_path / "busy"
    (busy / "benchmark").mkdir(parents=True)
    (busy / "README.md").write_text("mine")
    (busy / "benchmark" / "keep.txt").write_text("mine")
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="not empty"):
        publish(run_dir, ["hf"], busy)
    assert (busy / "README.md").read_text() == "mine" and (busy / "benchmark" / "keep.txt").read_text() == "mine"
    publish(run_dir, ["hf"], tmp_path / "pub", review=[review(tmp_path / "review-ann.jsonl", records(RUN / "benchmark.jsonl"), "keep", "ann")])
    publish(run_dir, ["hf"], tmp_path / "pub")  # its own earlier export is replaced whole
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pub") or p.name.endswith(".tmp")]


def test_html_escapes_every_value_and_the_review_payload_every_angle_bracket(run_dir):
    rej = records(run_dir / "rejected.jsonl") or [{"id": "x", "text": "t", "generation": 1}]
    rej[0]["generation"] = "<script>window.PWNED=1</script>"
    rewrite(run_dir / "rejected.jsonl", rej)
    items = records(run_dir / "benchmark.jsonl")
    items[0]["text"] = "<!--<script>"
    rewrite(run_dir / "benchmark.jsonl", items)
    page = render(load_run(run_dir))
    assert "<script>window.PWNED" not in page and "&lt;script&gt;window.PWNED" in page
    payload = page.split('id="review-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in payload and "\\u003c!--\\u003cscript\\u003e" in payload


def test_credentials_leave_every_url_before_it_is_stored(tmp_path):
    cfg = {"target": {"base_url": "https://evo:s3cret@api.example.com/v1", "base_urls": ["http://u:p@127.0.0.1:8000/v1"]}}
    assert "s3cret" not in json.dumps(redact(cfg)) and ":p@" not in json.dumps(redact(cfg))
    assert redact(cfg)["target"]["base_url"] == "https://api.example.com/v1"
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- +target.base_url=https://evo:s3cret@api.example.com/v1\n")
    redact_files(tmp_path / ".hydra")
    assert "s3cret" not in (tmp_path / ".hydra" / "overrides.yaml").read_text()


def test_screens_see_through_zero_width_and_look_alike_letters():
    for hidden in ("how do i kill my neighbour", "how do i k\u200bill my neighbour", "how do i kіll my neighbour",
                   "how do i ｋｉｌｌ my neighbour"):
        assert screen(hidden, []) is not None, hidden
        assert screen(hidden.replace("neighbour", "time"), ["kill my time"]) == "blocked: kill my time", hidden
    assert overlap("What is a kіll switch?", "What is a kill switch?") == 1.0


def test_bad_run_files_are_one_line(run_dir, tmp_path):
    (run_dir / "gate_calibration.json").write_text('{"threshold": 0.5}')
    with pytest.raises(UserError, match="not a gate calibration"):
        GateCalibration.read(run_dir / "gate_calibration.json")
    (run_dir / "run.json").write_text("[1, 2]")
    with pytest.raises(UserError, match=r"run.json: not a JSON object \(found a JSON list\)"):
        load_run(run_dir)
    (run_dir / "run.json").write_bytes(b'{"info": "\xff"}')
    with pytest.raises(UserError, match=r"run.json:1: not UTF-8"):
        load_run(run_dir)


def test_short_huge_and_non_utf8_csv_rows_are_one_line(tmp_path):
    f = tmp_path / "labelled.csv"
    f.write_text("prompt,label\nhello,safe\nshort\n")
    with pytest.raises(UserError, match=r"labelled.csv:3: 1 fields, the header has 2"):
        read_csv(f)
    f.write_text('prompt,label\n"' + "x" * (1 << 21) + "\n")
    with pytest.raises(UserError, match=r"labelled.csv:\d+: bad CSV"):
        read_csv(f)
    f.write_bytes(b"prompt,label\n\xff,safe\n")
    with pytest.raises(UserError, match=r"labelled.csv:2: not UTF-8"):
        read_csv(f)


def test_a_full_disk_turns_the_cache_off_and_keeps_it(tmp_path, monkeypatch):
    """SQLITE_FULL is the machine's state, not damage: the healthy cache was set aside as corrupt."""
    cache = CallCache(tmp_path / "calls.sqlite")
    cache.put_many({"a": 1})
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL

    class Full:
        def __enter__(self):
            raise full

        def __exit__(self, *a):
            return False

        def execute(self, *a):
            raise full

        def close(self):
            pass

    real = cache._db
    cache._db = Full()
    cache.put_many({"b": 2})
    assert cache.disabled == "the disk is full"
    real.close()
    assert not list(tmp_path.glob("*.corrupt-*")) and CallCache(tmp_path / "calls.sqlite").get_many(["a"]) == {"a": 1}


@pytest.mark.parametrize("case, args, message", [
    ("out is a file", ["format=inspect", "out={tmp}/afile"], "is a file"),
    ("interpolation", ["format=inspect", "run=${{oc.env:EVOPROMPT_NO_SUCH_VAR_X}}", "out={tmp}/o"], "EVOPROMPT_NO_SUCH_VAR_X"),
    ("list line", ["format=inspect", "out={tmp}/o"], "benchmark.jsonl:2: not a JSON object"),
    ("review not utf-8", ["format=inspect", "out={tmp}/o", "review=[{tmp}/review-bad.jsonl]"], "not UTF-8"),
])
def test_bad_export_input_is_one_line_exit_2(run_dir, tmp_path, case, args, message):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "review-bad.jsonl").write_bytes(b'{"kind": "item", "id": "x", "decision": "keep", "text": "\xff"}\n')
    if case == "list line":
        lines = (run_dir / "benchmark.jsonl").read_text().splitlines()
        (run_dir / "benchmark.jsonl").write_text("\n".join([lines[0], '["a list"]', *lines[1:]]) + "\n")
    args = [a.format(tmp=tmp_path) for a in args]
    if not any(a.startswith("run=") for a in args):
        args.append(f"run={run_dir}")
    r = evoprompt("export", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr


def test_exported_task_files_are_valid_python_and_yaml(run_dir, tmp_path):
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))  # lm-eval's own tag
    publish(run_dir, ["inspect", "lm-eval"], tmp_path / "pub")
    for f in (tmp_path / "pub").rglob("*.py"):
        compile(f.read_text(), str(f), "exec")
    for f in (tmp_path / "pub").rglob("*.yaml"):
        assert yaml.load(f.read_text(), Loader=Loader), f
