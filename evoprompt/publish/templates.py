"""The exported code and YAML, as package data (templates/*.tmpl) filled with string.Template: every value from the
run directory goes in through `py` (a Python literal, repr) or `yaml` (a JSON scalar on one line), never as raw
text, so a model name or hash holding quotes and newlines stays a value and cannot become a line of code."""
from __future__ import annotations

import json
from pathlib import Path
from string import Template

from evoprompt.fmt import one_line

_DIR = Path(__file__).parent / "templates"


def py(value) -> str:
    return repr(value)


def yaml(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def comment(text: str) -> str:
    """Text for a comment line: one line, quoted."""
    return json.dumps(one_line(text), ensure_ascii=False)


def fill(name: str, **values: str) -> str:
    """templates/<name>.tmpl with $keys replaced by the given (already encoded) values; a missing key is an error."""
    return Template((_DIR / f"{name}.tmpl").read_text(encoding="utf-8")).substitute(values)
