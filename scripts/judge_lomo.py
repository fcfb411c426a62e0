"""Refusal judges against labelled responses (refusal = full or partial refusal).

1. Leave-one-model-out on the five XSTest v2 models' human labels: the classifier is trained on four
   models (C chosen by leave-one-model-out within those four) and tested on the fifth, alone and anchored
   (classifier-anchored: on short answers, held to the anchored phrase detector; long ones unchanged),
   next to the anchored and substring phrase detectors.
2. Anchored vs substring phrase detector on every labelled CSV under the data folder.
3. Every offline judge on the hand-labelled sampled answers of the plain and guarded embedded targets
   (tests/data/labels/embedded_samples.csv): refusal precision / recall / F1, all and per target.
With --save PATH, the classifier is then trained on all five models and written to PATH (the shipped
classifier is made with --save fitness/refusal/shipped.npz).

    PYTHONPATH=. python scripts/judge_lomo.py [--data ../shared/data/judge] [--save PATH]
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from evoprompt.fitness.refusal.classifier import (
    REFUSAL_LABELS,
    AnchoredClassifier,
    EmbeddingRefusalClassifier,
    load_labelled,
    train_classifier,
)
from evoprompt.fitness.refusal.phrases import AnchoredPhraseJudge, SubstringPhraseJudge
from evoprompt.metrics import binary_report

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "judge"
LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "labels" / "embedded_samples.csv"
MODELS = ("gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct")
ATTRIBUTION = (
    "Human labels (final_label) of the XSTest v2 completions of gpt4, llama2new, llama2orig, mistralguard "
    "and mistralinstruct, 5 x 450 responses: Röttger et al., 'XSTest: A Test Suite for Identifying "
    "Exaggerated Safety Behaviours in Large Language Models' (NAACL 2024), CC-BY-4.0, "
    "github.com/paul-rottger/exaggerated-safety @ d7bb5bd, "
    "evaluation/automated_evaluation_labels/xstest_v2_completions_<model>_gpteval.csv; the completions are "
    "under their model providers' terms. Only learned weights are stored here, no data.")


class CachedEmbedder:
    """Embeds each distinct text once: LOMO refits see the same responses many times."""

    def __init__(self, embedder):
        self.embedder, self.cache = embedder, {}

    def __call__(self, texts):
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            self.cache.update(zip(missing, self.embedder(missing)))
        return np.array([self.cache[t] for t in texts])


def refusal_f1(rows, predicted) -> float:
    return binary_report([r[2] for r in rows], [int(p >= 0.5) for p in predicted])["refusal"]["f1"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--save", type=Path)
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no labelled data at {args.data}", file=sys.stderr)
        return 2
    from evoprompt.fitness.diversity import Embedder
    from evoprompt.llm.embedded import EMBEDDED_EMBEDDER

    embedder = CachedEmbedder(Embedder(EMBEDDED_EMBEDDER, "cpu"))
    anchored, substring = AnchoredPhraseJudge(), SubstringPhraseJudge()
    data = {m: load_labelled(args.data / "xstest" / f"xstest_v2_completions_{m}_gpteval.csv") for m in MODELS}

    print("Leave-one-model-out, XSTest v2 human labels: refusal-class F1")
    print(f"{'test model':16s} {'classifier':>10s} {'clf-anchored':>12s} {'anchored':>9s} {'substring':>9s}  C")
    scores = []
    for test in MODELS:
        train = [(m, r) for m in MODELS if m != test for r in data[m]]
        clf = train_classifier([r[0] for _, r in train], [r[1] for _, r in train], [r[2] for _, r in train],
                               embedder, groups=[m for m, _ in train])
        rows = data[test]
        prompts, responses = [r[0] for r in rows], [r[1] for r in rows]
        row = [refusal_f1(rows, j.prob(prompts, responses))
               for j in (clf, AnchoredClassifier(clf), anchored, substring)]
        scores.append(row)
        print(f"{test:16s} {row[0]:10.3f} {row[1]:12.3f} {row[2]:9.3f} {row[3]:9.3f}  {clf.metadata['C']:g}")
    mean = np.mean(scores, axis=0)
    print(f"{'mean':16s} {mean[0]:10.3f} {mean[1]:12.3f} {mean[2]:9.3f} {mean[3]:9.3f}")

    print("\nPhrase detectors on every labelled file: refusal-class F1 (PHTest labels are silver)")
    print(f"{'file':58s} {'n':>5s} {'anchored':>9s} {'substring':>9s}")
    wins = 0
    files = sorted(args.data.rglob("*.csv"))
    for path in files:
        rows = load_labelled(path)
        a, s = (refusal_f1(rows, j.prob([], [r[1] for r in rows])) for j in (anchored, substring))
        wins += a > s
        print(f"{str(path.relative_to(args.data)):58s} {len(rows):5d} {a:9.3f} {s:9.3f}")
    print(f"anchored beats substring on {wins} of {len(files)} files")

    print("\nHand-labelled sampled answers of the embedded targets: refusal precision / recall / F1")
    labelled = list(csv.DictReader(open(LABELS, newline="", encoding="utf-8")))
    shipped = EmbeddingRefusalClassifier.load(embedder=embedder)
    judges = {"classifier": shipped, "classifier-anchored": AnchoredClassifier(shipped), "phrases": anchored,
              "phrases-substring": substring}
    targets = [None, *sorted({r["target"] for r in labelled})]
    print(f"{'judge':20s} " + " ".join(f"{t or 'all':>20s}" for t in targets))
    for name, judge in judges.items():
        cells = []
        for target in targets:
            rows = [r for r in labelled if target in (None, r["target"])]
            p = judge.prob([r["prompt"] for r in rows], [r["completion"] for r in rows])
            rep = binary_report([int(r["final_label"] in REFUSAL_LABELS) for r in rows],
                                [int(q >= 0.5) for q in p])["refusal"]
            cells.append(f"{rep['precision']:.3f} {rep['recall']:.3f} {rep['f1']:.3f}")
        print(f"{name:20s} " + " ".join(f"{c:>20s}" for c in cells))

    if args.save:
        rows = [(m, r) for m in MODELS for r in data[m]]
        clf = train_classifier([r[0] for _, r in rows], [r[1] for _, r in rows], [r[2] for _, r in rows],
                               embedder, groups=[m for m, _ in rows], attribution=ATTRIBUTION)
        clf.save(args.save)
        print(f"\nsaved {args.save} ({args.save.stat().st_size} bytes, C={clf.metadata['C']:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
