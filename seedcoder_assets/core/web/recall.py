"""The fastText recall model of the web corpus (paper 2.2.3): trained on 70% of a labelled set of pages,
validated on the other 30%, its threshold chosen for a recall target (the paper: 99% recall at 45%
precision). Pages without code tags whose probability of being code-related reaches the threshold are
recalled for the LLM quality filter.

The split is by site, not by page: pages of one site share templates and vocabulary, and a model validated
on pages of sites it was trained on would look better than it is on sites it has never seen. A model's
version is a hash of its training data and parameters, so the same labels train the same model once.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]{1,3}")  # words, numbers, and runs of code punctuation
LABEL_CODE, LABEL_OTHER = "__label__code", "__label__other"
MODEL_FILE = "recall.bin"


class RecallParams(BaseModel, frozen=True):
    dim: int = Field(64, description="Embedding size")
    epoch: int = Field(15, description="Training epochs")
    lr: float = Field(0.5, description="Learning rate")
    word_ngrams: int = Field(2, description="Word n-grams (2: bigrams of tokens, e.g. 'def (')")
    min_count: int = Field(2, description="Tokens seen fewer times are ignored")
    max_tokens: int = Field(2000, description="Tokens of a page the model reads (title first)")
    validation_share: float = Field(0.3, description="Share of sites held out for validation (paper: 30%)")
    target_recall: float = Field(0.99, description="The threshold is the highest reaching this validation recall")
    seed: int = Field(0, description="Split and training seed (one thread: the same model every time)")


def page_line(title: str | None, text: str, max_tokens: int) -> str:
    """What fastText reads of a page: lower-cased tokens of the title and text, code punctuation kept."""
    tokens = TOKEN.findall(f"{title or ''}\n{text}".lower())
    return " ".join(tokens[:max_tokens])


@dataclass(frozen=True)
class Example:
    id: str
    host: str
    line: str  # page_line() of the page
    code: bool  # the label (the oracle's answer)


def _rank(host: str, seed: int) -> float:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{host}".encode(), digest_size=8).digest(), "big") / 2**64


def validation_sites(examples: Iterable[Example], share: float, seed: int) -> set[str]:
    """A seeded choice of about `share` of the sites (by a hash of seed and host), with at least one site
    of each label among them when the training side keeps one too (few sites, one class, no validation)."""
    by_host: dict[str, set[bool]] = {}
    for e in examples:
        by_host.setdefault(e.host, set()).add(e.code)
    chosen = {h for h in by_host if _rank(h, seed) < share}
    for label in (True, False):
        having = sorted((h for h, labels in by_host.items() if label in labels), key=lambda h: _rank(h, seed))
        if len(having) > 1 and not any(h in chosen for h in having):
            chosen.add(having[0])
        if having and all(h in chosen for h in having) and len(having) > 1:
            chosen.discard(having[-1])  # and one left to train on
    return chosen


def version_of(examples: Sequence[Example], params: RecallParams) -> str:
    h = hashlib.sha256(params.model_dump_json().encode())
    for e in sorted(examples, key=lambda e: e.id):
        h.update(f"{e.id}\t{int(e.code)}\t{e.host}\n".encode())
    return "wr-" + h.hexdigest()[:16]


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> list[dict[str, float]]:
    """(threshold, precision, recall) at every distinct score, highest threshold first."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.int64)
    tp, fp = np.cumsum(y), np.cumsum(1 - y)
    positives = max(1, int(y.sum()))
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last index of each run of equal scores
    return [{"threshold": float(s[i]), "precision": float(tp[i] / (tp[i] + fp[i])), "recall": float(tp[i] / positives)}
            for i in last]


def average_precision(curve: list[dict[str, float]]) -> float:
    """The area under the precision-recall curve (precision at each recall step, weighted by the step)."""
    area, last_recall = 0.0, 0.0
    for point in curve:
        area += (point["recall"] - last_recall) * point["precision"]
        last_recall = point["recall"]
    return area


def choose_threshold(curve: list[dict[str, float]], target_recall: float) -> dict[str, float]:
    """The highest threshold whose recall reaches the target (the curve's last point if none does)."""
    for point in curve:
        if point["recall"] >= target_recall:
            return point
    return curve[-1] if curve else {"threshold": 0.0, "precision": 0.0, "recall": 0.0}


class RecallModel:
    def __init__(self, path: Path, threshold: float, max_tokens: int) -> None:
        import fasttext

        self.model = fasttext.load_model(str(path))
        self.threshold, self.max_tokens = threshold, max_tokens

    def code_probability(self, lines: Sequence[str]) -> np.ndarray:
        """P(code-related) per page line."""
        if not lines:
            return np.zeros(0, np.float32)
        labels, probs = self.model.predict(list(lines), k=2)
        out = np.zeros(len(lines), np.float32)
        for i, (ls, ps) in enumerate(zip(labels, probs)):
            for label, p in zip(ls, ps):
                if label == LABEL_CODE:
                    out[i] = p
        return out


def train_recall(examples: Sequence[Example], params: RecallParams, out: Path) -> dict[str, Any]:
    """Train on the training sites, validate on the held-out ones, choose the threshold; the model goes to
    `out/recall.bin`, and the report (figures, the curve, the threshold) is returned."""
    import fasttext

    held = validation_sites(examples, params.validation_share, params.seed)
    train = [e for e in examples if e.host not in held]
    valid = [e for e in examples if e.host in held]
    if not train or not valid or len({e.code for e in train}) < 2:
        raise ValueError(f"cannot train: {len(train)} training and {len(valid)} validation pages, "
                         f"labels {sorted({e.code for e in train})} in training")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=out, delete=False) as f:
        for e in train:
            f.write(f"{LABEL_CODE if e.code else LABEL_OTHER} {e.line}\n")
        train_file = f.name
    model = fasttext.train_supervised(input=train_file, dim=params.dim, epoch=params.epoch, lr=params.lr,
                                      wordNgrams=params.word_ngrams, minCount=params.min_count, thread=1,
                                      seed=params.seed, verbose=0)
    Path(train_file).unlink()
    model.save_model(str(out / MODEL_FILE))
    scored = RecallModel(out / MODEL_FILE, 0.0, params.max_tokens).code_probability([e.line for e in valid])
    labels = np.array([e.code for e in valid])
    curve = pr_curve(scored, labels)
    chosen = choose_threshold(curve, params.target_recall)
    predicted = scored >= chosen["threshold"]
    return {
        "threshold": chosen["threshold"], "validation_recall": chosen["recall"],
        "validation_precision": chosen["precision"], "target_recall": params.target_recall,
        "recalled_share": float(predicted.mean()) if len(predicted) else 0.0,
        "average_precision": average_precision(curve), "positive_share": float(labels.mean()),
        "n_train": len(train), "n_validation": len(valid), "train_positive": sum(e.code for e in train),
        "validation_positive": int(labels.sum()), "validation_sites": sorted(held),
        "curve": curve, "params": params.model_dump(),
    }
