"""Arrow schemas of the data the pipeline writes. One place, so stages and checks agree."""

from __future__ import annotations

import pyarrow as pa

# One row per source file. `id` is stable: a hash of (crawl, repo, path).
FILE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("crawl", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("language", pa.string()),
        ("size", pa.int64()),
        ("sha256", pa.string()),
        ("content", pa.large_string()),
    ]
)

# One row per repository of a crawl, with whatever the crawler knew about it.
REPO_SCHEMA = pa.schema(
    [
        ("crawl", pa.string()),
        ("repo", pa.string()),
        ("archive", pa.string()),
        ("stars", pa.int64()),
        ("forks", pa.int64()),
        ("license", pa.string()),
        ("commits", pa.int64()),
        ("created_at", pa.string()),
        ("pushed_at", pa.string()),
        ("n_files", pa.int64()),
        ("n_bytes", pa.int64()),
        ("repo_sha256", pa.string()),
    ]
)

# Exactly one row per (record, stage): the record's fate in that stage.
LINEAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("crawl", pa.string()),
        ("stage", pa.string()),
        ("decision", pa.string()),  # "kept" | "dropped"
        ("reason", pa.string()),  # null when kept
        ("cluster", pa.string()),  # duplicate cluster (survivor id) for dedup stages
        ("survivor", pa.string()),  # the record that was kept in its place
        ("detail", pa.string()),  # stage-specific: repo/path at ingest, error share at syntax
        ("score", pa.float32()),  # the quality score at the quality stage (with the scorer version in detail)
        ("run_id", pa.string()),
        # The record the stage wrote for this one, when it is not the same id: a merge (many files into
        # one long-context document) gives all its inputs one output id, a transform may give a new id.
        # `seedcoder why <output id>` walks back through it to every crawl record it came from.
        ("output_id", pa.string()),
        ("source", pa.string()),  # github | commits | web: which kind of partition `crawl` names
    ]
)

# MinHash signatures, kept apart from clusters so the survivor rule can change cheaply.
SIGNATURE_SCHEMA = pa.schema(
    [("id", pa.string()), ("n_shingles", pa.int32()), ("signature", pa.binary()),
     ("shingle_set", pa.binary())]  # the sorted distinct shingle hashes of a small file; null for larger ones
)

# Near-duplicate clusters: one row per member, the survivor rule's inputs kept as columns.
CLUSTER_SCHEMA = pa.schema(
    [
        ("cluster", pa.string()),
        ("id", pa.string()),
        ("survivor", pa.string()),
        ("similarity", pa.float32()),  # estimated Jaccard with the survivor
        ("prior_crawl", pa.string()),  # set when the survivor is in an earlier crawl
        ("stars", pa.int64()),
        ("pushed_at", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
    ]
)

KEPT, DROPPED = "kept", "dropped"
