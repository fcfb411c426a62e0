"""Atomic output files, and strict readers of the project's own file kinds.

Writers: a reader (or a crash) sees the old file or the new one, never half of one.

Each writer puts the content into a temporary file in the same folder (so the rename never crosses a file
system), flushes and fsyncs it, then os.replace()s it over the target and fsyncs the folder. A process killed
before the rename leaves the old file untouched and at most a hidden `.NAME.tmp-PID` file, which the next
write of NAME removes.

Readers (`read_text`, `read_json`, `read_jsonl`, `read_csv`): a file that is not UTF-8, not JSON, or not the shape asked for is
one UserError naming the file and line, never a traceback; they are used wherever a person's file is read (run
directories, review files, labelled sets, calibrations)."""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

from evoprompt.errors import UserError
from evoprompt.faults import kill_point


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _stale_temps(path: Path) -> None:
    for old in path.parent.glob(f".{path.name}.tmp-*"):
        try:
            old.unlink()
        except OSError:
            pass


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write data to path atomically (temp file in the same folder + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _stale_temps(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        kill_point(f"write {path.name}")  # test hook: a kill here must leave the old file whole
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write text to path atomically."""
    atomic_write_bytes(path, text.encode(encoding))


def jsonl_text(records: Iterable[dict]) -> tuple[str, int]:
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    return "".join(lines), len(lines)


def atomic_write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write one JSON object per line atomically; returns the number of records written."""
    text, n = jsonl_text(records)
    atomic_write_text(path, text)
    return n


def atomic_write_json(path: str | Path, obj, **dumps_kw) -> None:
    """json.dumps(obj, **dumps_kw) written atomically."""
    atomic_write_text(path, json.dumps(obj, **dumps_kw))


def atomic_savefig(fig, path, **savefig_kw) -> None:
    """matplotlib Figure.savefig into memory, then written atomically (format from the suffix unless given);
    a file-like `path` is written directly."""
    import io

    if hasattr(path, "write"):  # an in-memory buffer (report.html inlines its plots)
        fig.savefig(path, **savefig_kw)
        return
    path = Path(path)
    buf = io.BytesIO()
    savefig_kw.setdefault("format", path.suffix.lstrip(".") or "png")
    fig.savefig(buf, **savefig_kw)
    atomic_write_bytes(path, buf.getvalue())


def read_text(path: str | Path) -> str:
    """The file as UTF-8 text (a byte-order mark is dropped)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); "
                        "save the file as UTF-8") from None


MAX_CSV_FIELD = 1 << 20  # characters: longer is not a prompt but a broken file (an unclosed quote)


def read_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of a CSV file, each row {column: text}; a row with fewer fields than the header,
    a field over MAX_CSV_FIELD characters or bad quoting stops with one line naming the file and line."""
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    limit = csv.field_size_limit()
    csv.field_size_limit(MAX_CSV_FIELD)
    try:
        header = next(reader, [])
        rows = []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            if len(fields) < len(header):
                raise UserError(f"{path}:{reader.line_num}: {len(fields)} fields, the header has {len(header)} "
                                f"({', '.join(header)})")
            rows.append(dict(zip(header, fields)))
    except csv.Error as e:
        raise UserError(f"{path}:{reader.line_num}: bad CSV ({e})") from None
    finally:
        csv.field_size_limit(limit)
    return header, rows


def read_json(path: str | Path, kind: type = dict, what: str = "a JSON object"):
    """The file's JSON value, which must be of `kind` (an object by default)."""
    path = Path(path)
    try:
        value = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not JSON ({e.msg})") from None
    if not isinstance(value, kind):
        raise UserError(f"{path}: not {what} (found a JSON {type(value).__name__})")
    return value


def numbered_jsonl(path: str | Path):
    """(line number, object) for each non-empty line; a line that is not a JSON object is one UserError."""
    path = Path(path)
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n}: not a JSON record ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{n}: not a JSON object (found a JSON {type(row).__name__})")
        yield n, row


def read_jsonl(path: str | Path) -> list[dict]:
    """One JSON object per non-empty line."""
    return [row for _, row in numbered_jsonl(path)]
