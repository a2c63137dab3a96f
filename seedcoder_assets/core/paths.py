"""The only place that turns (asset key, partition) into a storage URI."""

from __future__ import annotations

from collections.abc import Sequence


def partition_uri(root: str, asset_key: Sequence[str], crawl: str) -> str:
    """`<root>/<key...>/crawl=<crawl>`: the folder holding one partition's Parquet parts."""
    return "/".join([root.rstrip("/"), *asset_key, f"crawl={crawl}"])


def lineage_uri(root: str, stage: str, crawl: str) -> str:
    """Lineage rows of one stage for one crawl."""
    return "/".join([root.rstrip("/"), "lineage", f"stage={stage}", f"crawl={crawl}"])


def crawl_uri(landing_root: str, crawl: str) -> str:
    """Where a crawl lands: a folder with `repos.jsonl` and archives, or Parquet files."""
    return "/".join([landing_root.rstrip("/"), crawl])
