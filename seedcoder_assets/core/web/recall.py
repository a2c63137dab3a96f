"""The fastText recall model of the web corpus (paper 2.2.3): trained on 70% of a labelled set of pages,
validated on the other 30%, its threshold chosen for a recall target (the paper: 99% recall at 45%
precision). Half of the held-out sites fit the threshold and the other half check it, so the figures a user
sees (and the check gates on) come from pages neither the model nor the threshold has seen; both are
measured on pages without code tags, the only ones the model is asked about. Pages without code tags whose probability of being code-related reaches the threshold are
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

from seedcoder_assets.core.fasttext_buckets import ngram_buckets

TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]{1,3}")  # words, numbers, and runs of code punctuation
LABEL_CODE, LABEL_OTHER = "__label__code", "__label__other"
MODEL_FILE = "recall.bin"


class RecallParams(BaseModel, frozen=True):
    dim: int = Field(64, description="Embedding size")
    epoch: int = Field(15, description="Training epochs")
    lr: float = Field(0.5, description="Learning rate")
    word_ngrams: int = Field(2, description="Word n-grams (2: bigrams of tokens, e.g. 'def (')")
    min_count: int = Field(2, description="Tokens seen fewer times are ignored")
    bucket: int | None = Field(None, description="Hash buckets of word n-grams; None: sized to the training pages "
                                                 "(core/fasttext_buckets.py), at most fastText's 2,000,000")
    max_tokens: int = Field(2000, description="Tokens of a page the model reads (title first)")
    validation_share: float = Field(0.3, description="Share of sites held out for validation (paper: 30%)")
    check_share: float = Field(0.5, description="Share of the held-out sites that check the threshold; the rest "
                                                "fit it (so it is never judged on the pages it was fitted to)")
    target_recall: float = Field(0.99, description="The threshold is the highest reaching this recall on the "
                                                   "fitting sites' pages without code tags")
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
    tagged: bool = False  # the page has code tags: the rule keeps it, the model is never asked about it


def _rank(host: str, seed: int) -> float:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{host}".encode(), digest_size=8).digest(), "big") / 2**64


def split_sites(examples: Iterable[Example], params: RecallParams) -> tuple[set[str], set[str], set[str]]:
    """(training, fitting, checking) sites. Sites are grouped by the label most of their pages carry; in each
    group, ranked by a hash of seed and host, about `validation_share` are held out (at least two when the
    group has three or more, so that both the fitting and the checking sites have one of each label, and
    at least one always trains), and the held-out sites are dealt alternately to checking and fitting
    (about `check_share` of them checking)."""
    votes: dict[str, list[int]] = {}
    for e in examples:
        votes.setdefault(e.host, [0, 0])[e.code] += 1
    train: set[str] = set()
    fit: set[str] = set()
    check: set[str] = set()
    for label in (True, False):
        sites = sorted((h for h, (no, yes) in votes.items() if (yes > no) is label), key=lambda h: _rank(h, params.seed))
        n = len(sites)
        held = min(n - 1, max(2 if n >= 3 else n - 1, round(n * params.validation_share))) if n else 0
        n_check = min(held - 1, max(1, round(held * params.check_share))) if held >= 2 else held
        check |= set(sites[:n_check])
        fit |= set(sites[n_check:held])
        train |= set(sites[held:])
    return train, fit, check


def version_of(examples: Sequence[Example], params: RecallParams) -> str:
    """A hash of the parameters and every example (id, label, site, stratum and the text it reads)."""
    h = hashlib.sha256(params.model_dump_json().encode())
    for e in sorted(examples, key=lambda e: e.id):
        h.update(f"{e.id}\t{int(e.code)}\t{e.host}\t{int(e.tagged)}\t".encode())
        h.update(hashlib.blake2b(e.line.encode(), digest_size=8).digest())
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


def _population(examples: list[Example]) -> list[Example]:
    """The pages the model is used on (no code tags), or all of them if those hold no code-related page."""
    untagged = [e for e in examples if not e.tagged]
    return untagged if any(e.code for e in untagged) else examples


def measure(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall, precision and the recalled share at a threshold (P(code) at or above it is recalled)."""
    recalled = scores >= threshold
    return {"recall": float(recalled[labels].mean()) if labels.any() else float("nan"),
            "precision": float(labels[recalled].mean()) if recalled.any() else float("nan"),
            "recalled_share": float(recalled.mean()) if len(recalled) else 0.0}


def train_recall(examples: Sequence[Example], params: RecallParams, out: Path) -> dict[str, Any]:
    """Train on the training sites; fit the threshold on the fitting sites' pages without code tags (the
    population it is used on); measure it on the checking sites'. The model goes to `out/recall.bin`;
    the report (figures, the checking sites' curve, the threshold) is returned."""
    import fasttext

    train_sites, fit_sites, check_sites = split_sites(examples, params)
    train = [e for e in examples if e.host in train_sites]
    check = _population([e for e in examples if e.host in check_sites])
    # Too few sites to fit and check apart (two of a kind): the threshold is fitted where it is checked, and
    # the report says so.
    fit = _population([e for e in examples if e.host in fit_sites]) if fit_sites else check
    if not train or not fit or not check or len({e.code for e in train}) < 2:
        raise ValueError(f"cannot train: {len(train)} training, {len(fit)} fitting and {len(check)} checking "
                         f"pages; labels {sorted({e.code for e in train})} in training")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=out, delete=False) as f:
        for e in train:
            f.write(f"{LABEL_CODE if e.code else LABEL_OTHER} {e.line}\n")
        train_file = f.name
    bucket = params.bucket or ngram_buckets(Path(train_file), params.word_ngrams)
    model = fasttext.train_supervised(input=train_file, dim=params.dim, epoch=params.epoch, lr=params.lr,
                                      wordNgrams=params.word_ngrams, minCount=params.min_count, bucket=bucket,
                                      thread=1, seed=params.seed, verbose=0)
    Path(train_file).unlink()
    model.save_model(str(out / MODEL_FILE))
    scorer = RecallModel(out / MODEL_FILE, 0.0, params.max_tokens)
    fit_scores, fit_labels = scorer.code_probability([e.line for e in fit]), np.array([e.code for e in fit])
    threshold = choose_threshold(pr_curve(fit_scores, fit_labels), params.target_recall)["threshold"]
    scores, labels = scorer.code_probability([e.line for e in check]), np.array([e.code for e in check])
    curve = pr_curve(scores, labels)
    fitted, checked = measure(fit_scores, fit_labels, threshold), measure(scores, labels, threshold)
    return {
        "threshold": threshold, "target_recall": params.target_recall,
        "fit_recall": fitted["recall"], "fit_precision": fitted["precision"],
        "check_recall": checked["recall"], "check_precision": checked["precision"],
        "check_recalled_share": checked["recalled_share"], "check_average_precision": average_precision(curve),
        "check_positive_share": float(labels.mean()),
        "bucket": bucket, "n_train": len(train), "n_fit": len(fit), "n_check": len(check),
        "train_positive": sum(e.code for e in train), "check_positive": int(labels.sum()),
        "check_untagged_only": all(not e.tagged for e in check), "fitted_apart_from_check": bool(fit_sites),
        "training_sites": sorted(train_sites), "fitting_sites": sorted(fit_sites), "checking_sites": sorted(check_sites),
        "curve": curve, "params": params.model_dump(),
    }
