"""The Hugging Face dataset: one config per split (parquet), the card, and an eval.yaml that inspect_ai runs from
the Hub as it is."""
from __future__ import annotations

import json
import os
from pathlib import Path

from evoprompt.files import atomic_write_text
from evoprompt.publish.card import SPLITS, card_body
from evoprompt.publish.facts import pretty_name
from evoprompt.publish.items import Publishable
from evoprompt.publish.templates import comment, fill
from evoprompt.records import BenchmarkItem


def _hub_item(b: BenchmarkItem) -> dict:
    """An item as a dataset row: per-target figures as a list of rows (a column type that does not depend on the
    targets' names)."""
    d = b.to_json()
    d["score"]["targets"] = [{"target": n, **t} for n, t in d["score"]["targets"].items()]
    return d


def _table_rows(records: list[dict]) -> list[dict]:
    # provenance holds the whole resolved config, whose shape varies between runs: as a JSON string it keeps one
    # stable column type, so splits of different runs concatenate
    return [{k: json.dumps(v, ensure_ascii=False, sort_keys=True) if k == "provenance" else v for k, v in r.items()}
            for r in records]


def size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return label
    return "n>1M"


def write_hf(p: Publishable, dest: Path, rejected: bool = False, license: str = "apache-2.0") -> dict:
    from datasets import Dataset, disable_progress_bars
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    disable_progress_bars()
    records = {"benchmark": [_hub_item(b) for b in p.items], "sft": p.sft, "dpo": p.dpo,
               "rejected": [r.to_json() for r in p.rejected] if rejected else []}
    configs, infos, counts = {}, {}, {}
    for name, split in SPLITS.items():
        if not records[name]:
            continue
        ds = Dataset.from_list(_table_rows(records[name]))
        path = dest / name / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        ds.to_parquet(str(tmp))
        os.replace(tmp, path)
        counts[name] = len(ds)
        configs[name] = {"data_files": [{"split": split, "path": f"{name}/{split}-*"}],
                         **({"default": True} if name == "benchmark" else {})}
        splits = SplitDict()
        splits.add(SplitInfo(name=split, num_bytes=ds.data.nbytes, num_examples=len(ds)))
        infos[name] = DatasetInfo(features=ds.features, splits=splits, download_size=path.stat().st_size,
                                  dataset_size=ds.data.nbytes)

    data = DatasetCardData(license=license, language=["en"], task_categories=["text-generation"],
                           tags=["over-refusal", "safety", "refusal", "llm-evaluation", "synthetic", "evorefuse"],
                           pretty_name=pretty_name(p.run), size_categories=[size_category(len(p.items))],
                           annotations_creators=["machine-generated"] + (["expert-generated"] if p.review else []),
                           language_creators=["machine-generated"])
    atomic_write_text(dest / "eval.yaml", fill("eval.yaml", title_comment=comment(pretty_name(p.run))))
    MetadataConfigs(configs).to_dataset_card_data(data)
    DatasetInfosDict(infos).to_dataset_card_data(data)
    atomic_write_text(dest / "README.md", str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(p, counts, license)}")))
    return counts
