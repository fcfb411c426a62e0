"""Public prompt sets by name, read from a local copy: evoprompt downloads nothing and ships none of them.

`data:NAME` names a set below (its public source is in `source`), `data:REL/PATH` any file of the copy. The copy
is the folder in $EVOPROMPT_DATA, laid out as `file` says (the layout of the sets' own repositories)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evoprompt.errors import UserError

DATA_ENV = "EVOPROMPT_DATA"
PREFIX = "data:"


@dataclass(frozen=True)
class PublicSet:
    source: str   # the public identifier: repository and file the set comes from
    file: str     # where it lies in a local copy
    license: str


PUBLIC_SETS = {
    "xstest": PublicSet("paul-rottger/exaggerated-safety: xstest_prompts.csv", "xstest/xstest_prompts.csv", "CC-BY-4.0"),
    "phtest": PublicSet("umd-huang-lab/FalseRefusal: PHTest/dataset_v0.1.csv", "phtest/dataset_v0.1.csv", "MIT"),
    "oktest": PublicSet("InvokerStark/OverKill: data/OKTest.csv", "oktest/OKTest.csv", "not stated"),
    "orbench": PublicSet("AI45Lab/X-Boundary: data/test/ORbench_test_300.json (OR-Bench)",
                         "orbench/ORbench_test_300.json", "CC-BY-4.0"),
}


def is_public(ref: str) -> bool:
    return ref.startswith(PREFIX)


def resolve(ref: str) -> Path:
    """`data:NAME` or `data:REL/PATH` -> the file in $EVOPROMPT_DATA (which may not exist: see `available`)."""
    name = ref[len(PREFIX):]
    root = os.environ.get(DATA_ENV)
    if not root:
        raise UserError(f"{ref}: set {DATA_ENV} to the folder that holds a copy of the public sets "
                        f"({', '.join(f'{k}: {v.source}' for k, v in PUBLIC_SETS.items())})")
    return Path(root).expanduser() / (PUBLIC_SETS[name].file if name in PUBLIC_SETS else name)


def available(ref: str) -> bool:
    return bool(os.environ.get(DATA_ENV)) and resolve(ref).is_file()
