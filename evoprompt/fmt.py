"""Number and table formatting, one place for every report (report.md, eval's and align's reports, the dataset
card, gate calibration, explain): "n/a" for a missing or undefined value, intervals as `v [lo, hi]`, Markdown rows
whose cells cannot break the table (pipes escaped, newlines folded)."""
from __future__ import annotations

import math


def defined(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


def num(v, spec: str = ".3f", missing: str = "n/a") -> str:
    return format(v, spec) if defined(v) else missing


def ci(value, lo=None, hi=None, spec: str = ".3f", bound_spec: str = ".2f") -> str:
    """`value [lo, hi]`, or the value alone where there is no interval."""
    if not (defined(lo) and defined(hi)):
        return num(value, spec)
    return f"{num(value, spec)} [{num(lo, bound_spec)}, {num(hi, bound_spec)}]"


def metric(value, lo=None, hi=None) -> str:
    """A figure of a measurement: a count as a whole number, a rate with its interval, NaN as "undefined"."""
    if isinstance(value, float) and math.isnan(value):
        return "undefined"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and lo is None):
        return str(int(value))
    if abs(value) >= 100:
        return ci(value, lo, hi, ".1f", ".1f")
    return ci(value, lo, hi)


def one_line(text) -> str:
    """Text on one line (newlines and runs of white space folded): what goes into a table cell or a comment."""
    return " ".join(str(text).split())


def md_row(*cells) -> str:
    return "| " + " | ".join(one_line("" if c is None else c).replace("|", "\\|") for c in cells) + " |"


def md_table(header: list[str], rows: list[list]) -> list[str]:
    return [md_row(*header), md_row(*["---"] * len(header)), *(md_row(*r) for r in rows)]
