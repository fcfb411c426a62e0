"""Read seed instructions: the packaged set, a run's benchmark.jsonl, or a public over-refusal benchmark."""

import csv
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from evoprompt.errors import UserError

# The two packaged sets (JSONL, each item with a category and whether it is harmful):
# harmless: pseudo-malicious requests with alarming surface features, for small rewriters and weak gates;
# harmful: harmful-looking requests, for strong rewriters behind strong gates (the GPU presets).
PACKAGED = {"harmless": Path(__file__).parent / "harmless.jsonl", "harmful": Path(__file__).parent / "harmful.jsonl"}
TEXT_FIELDS = ("text", "prompt", "instruction")
# Per format: split name -> label value kept (None keeps every row). Formats without labels accept safe/all.
SPLITS = {
    "xstest": {"safe": "safe", "unsafe": "unsafe", "all": None},
    "phtest": {"safe": "harmless", "controversial": "controversial", "all": None},
}
UNSPLIT = {"safe": None, "all": None}
# utf-8-sig also reads plain UTF-8; it drops a BOM that would otherwise corrupt the first CSV header.
ENCODING = "utf-8-sig"


@dataclass
class Seed:
    id: str
    text: str
    category: str = ""
    source: str = ""
    harmful: bool | None = None  # None: not known

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def load_seeds(
    path: str | None = None,
    fmt: str = "auto",
    text_column: str | None = None,
    limit: int | None = None,
    split: str = "safe",
    packaged: str = "harmless",
) -> list[Seed]:
    """Seeds from `path` (default: the packaged set named `packaged`), stripped, non-empty, first of each
    exact duplicate."""
    if path is None and packaged not in PACKAGED:
        raise UserError(f"unknown packaged seed set '{packaged}'; valid: {', '.join(PACKAGED)}")
    path = Path(path).expanduser() if path is not None else PACKAGED[packaged]
    if fmt != "auto" and fmt not in READERS:
        raise UserError(f"{path}: unknown seed format '{fmt}'; valid: auto, {', '.join(READERS)}")
    if not path.is_file():
        raise UserError(f"seed file not found: {path}")
    try:
        fmt = _detect(path) if fmt == "auto" else fmt
        labels = SPLITS.get(fmt, UNSPLIT)
        if split not in labels:
            raise UserError(f"{path}: unknown split '{split}' for {fmt}; valid: {', '.join(labels)}")
        seeds, seen = [], set()
        for seed in READERS[fmt](path, text_column, labels[split]):
            seed.text = seed.text.strip()
            if seed.text and seed.text not in seen:
                seen.add(seed.text)
                seed.source = path.name
                if seed.harmful is None and label_harmful(fmt, split) is not None:
                    seed.harmful = label_harmful(fmt, split)
                seeds.append(seed)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not seeds:
        raise UserError(f"{path}: no seeds found (format {fmt}, split {split})")
    return seeds[:limit] if limit and limit > 0 else seeds


def label_harmful(fmt: str, split: str) -> bool | None:
    """What a labelled split says of its rows' harmfulness (None for unlabelled or mixed splits)."""
    if fmt not in SPLITS or split == "all":
        return None
    return split in ("unsafe",)


def _detect(path: Path) -> str:
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.suffix == ".json":
        return "orbench"
    with path.open(newline="", encoding=ENCODING) as f:
        first = f.readline()
    if first.lstrip().startswith(("{", "[")):
        try:
            json.loads(first)
            return "jsonl"
        except json.JSONDecodeError:  # a pretty-printed JSON document
            return "orbench"
    header = set(next(csv.reader([first]), []))
    if {"id", "prompt", "type", "label"} <= header:
        return "xstest"
    if {"ID", "Request", "Harmfulness"} <= header:
        return "phtest"
    return "oktest" if header == {"prompt"} else "csv"


def _text(record: dict, names: tuple[str, ...], where: str) -> str:
    for name in names:
        if name in record:
            if not isinstance(record[name], str):  # JSON null/number, or a short CSV row
                raise UserError(f"{where}: '{name}' has no text value")
            return record[name]
    wanted = " or ".join(f"'{n}'" for n in names)
    columns = ", ".join(k for k in record if isinstance(k, str)) or "none"
    raise UserError(f"{where}: no {wanted} field (columns: {columns})")


def parse_json(text: str, where: str, kind: type, what: str):
    """json.loads(text), which must give a `kind`; otherwise one UserError naming `where` and the position."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        at = f"line {e.lineno}, column {e.colno}" if "\n" in text.strip() else f"column {e.colno}"
        raise UserError(f"{where}: not valid JSON ({e.msg} at {at})") from None
    if not isinstance(value, kind):
        raise UserError(f"{where}: {what}")
    return value


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-empty line; a bad line is one UserError naming the file and line."""
    with path.open(encoding=ENCODING) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, parse_json(line, f"{path}:{n}", dict, "not a JSON object")


def _read_jsonl(path: Path, text_column: str | None, _label: None) -> Iterator[Seed]:
    names = (text_column,) if text_column else TEXT_FIELDS
    for n, record in jsonl_objects(path):
        text = _text(record, names, f"{path}:{n}")
        harmful = record.get("harmful")
        if harmful is not None and not isinstance(harmful, bool):
            raise UserError(f"{path}:{n}: 'harmful' must be true or false, got {harmful!r}")
        yield Seed(str(record.get("id") or f"{path.stem}-{n}"), text, str(record.get("category") or ""), "", harmful)


def _read_csv(
    path: Path,
    text_column: str | None,
    label: str | None,
    text: tuple[str, ...] = TEXT_FIELDS,
    id_col: str = "id",
    category_col: str = "category",
    label_col: str = "",
) -> Iterator[Seed]:
    names = (text_column,) if text_column else text
    with path.open(newline="", encoding=ENCODING) as f:
        reader = csv.DictReader(f)
        try:
            for n, row in enumerate(reader, 1):
                if label is not None and row.get(label_col) != label:
                    continue
                value = _text(row, names, f"{path}:{reader.line_num}")
                yield Seed(row.get(id_col) or f"{path.stem}-{n}", value, row.get(category_col) or "")
        except csv.Error as e:
            raise UserError(f"{path}:{reader.line_num}: bad CSV ({e})") from None


def _read_orbench(path: Path, _text_column: str | None, _label: None) -> Iterator[Seed]:
    try:
        data = json.loads(path.read_text(encoding=ENCODING))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UserError(f'{path}: expected OR-Bench JSON {{"data": [{{"behavior": ..., "messages": [...]}}]}}')
    for i, item in enumerate(items):
        try:
            text = [m["content"] for m in item["messages"] if m["role"] == "user"][-1]
        except (KeyError, TypeError, IndexError):
            text = None
        if not isinstance(text, str):
            raise UserError(f"{path}: data[{i}] has no user message")
        yield Seed(f"{path.stem}-{i + 1}", text, str(item.get("behavior") or ""))


READERS = {
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "xstest": partial(_read_csv, text=("prompt",), category_col="type", label_col="label"),
    "orbench": _read_orbench,
    "phtest": partial(_read_csv, text=("Request",), id_col="ID", category_col="Harmfulness", label_col="Harmfulness"),
    "oktest": partial(_read_csv, text=("prompt",)),
}


def set_name(path: str, taken: set) -> str:
    """A prompt set's short name in tables (a run's benchmark.jsonl: its folder), unique among `taken`."""
    p = Path(path)
    name = p.parent.name if p.stem == "benchmark" else p.stem
    while name in taken:
        name = f"{p.parent.name}/{name}"
    taken.add(name)
    return name
