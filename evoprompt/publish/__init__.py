"""Publishing a finished run: a Hugging Face dataset with its card, an inspect_ai task, lm-eval tasks.

Over-refusal sets are shared on the Hub and run through inspect_ai and lm-evaluation-harness; this writes the glue
so that a run's split can be loaded and scored with those tools as they are. Everything is built from the run
directory's files, re-checked (items.py: verdicts, screens, review, presence), never from a live search; the
output folder is written whole into a new place (folder.py), code and YAML from templates filled with encoded
values (templates.py). Each format's folder stands alone (the eval folders carry their own copy of the items).

Layout: with one format, `out` is that format's folder; with several, `out/hf`, `out/inspect`, `out/lm-eval`. What
was held back goes to `<out>.withheld.jsonl` beside the folder, never into it and never into the run."""
from __future__ import annotations

from pathlib import Path

from evoprompt.errors import UserError, unknown
from evoprompt.files import atomic_write_jsonl
from evoprompt.publish.card import CONTROL, TASK
from evoprompt.publish.folder import write_folder
from evoprompt.publish.hub import write_hf
from evoprompt.publish.items import publishable
from evoprompt.publish.tasks import write_inspect, write_lm_eval
from evoprompt.rundir.reader import load_run

FORMATS = ("hf", "inspect", "lm-eval")
WRITERS = {"hf": write_hf, "inspect": write_inspect, "lm-eval": write_lm_eval}


def parse_formats(value) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if "all" in names:
        return list(FORMATS)
    for n in names:
        if n not in FORMATS:
            raise unknown("export format", n, FORMATS + ("all",))
    if not names:
        raise UserError(f"no export format given; valid: {', '.join(FORMATS + ('all',))}")
    return list(dict.fromkeys(names))


def withheld_path(out: Path) -> Path:
    out = Path(out).expanduser()
    return out.parent / f"{out.name}.withheld.jsonl"


def publish(run_dir: Path, formats, out: Path, rejected: bool = False, license: str = "apache-2.0",
            gate_calibration: Path | None = None, review: list[str] | None = None, review_rule: str = "all") -> dict:
    """Write each format; returns {format: {"path": folder, **what was written}} and, under "withheld", how many
    items were held back (listed with the reason in withheld_path(out))."""
    formats = parse_formats(formats)
    run = load_run(Path(run_dir), gate_calibration)
    if not run.benchmark:
        raise UserError(f"{run.path / 'benchmark.jsonl'} has no items: nothing to publish (see the run's report.md)")
    p = publishable(run, review, review_rule)
    if not p.items:
        raise UserError(f"none of the {len(run.benchmark)} items may be published ({p.withheld[0]['why']}, ...): "
                        "nothing to publish")
    out = Path(out)

    def build(tmp: Path) -> dict:
        written = {}
        for fmt in formats:
            dest = tmp if len(formats) == 1 else tmp / fmt
            dest.mkdir(parents=True, exist_ok=True)
            final = out if len(formats) == 1 else out / fmt
            written[fmt] = {"path": str(final), **WRITERS[fmt](p, dest, rejected=rejected, license=license)}
        return written

    written = write_folder(out, build)
    atomic_write_jsonl(withheld_path(out), p.withheld)
    return {**written, "withheld": len(p.withheld)}


__all__ = ["CONTROL", "FORMATS", "TASK", "parse_formats", "publish", "withheld_path"]
