"""The only place that turns (asset key, partition) into a storage URI."""

from __future__ import annotations

from collections.abc import Sequence


def shard_folder(shard: str) -> str:
    """A shard's folder inside its crawl's. Not `shard=`: DuckDB's hive partitioning refuses a view over
    folders of two depths (a lake holds crawls with and without shards)."""
    return f"shard-{shard}"


def partition_uri(root: str, asset_key: Sequence[str], crawl: str, shard: str | None = None) -> str:
    """`<root>/<key...>/crawl=<crawl>`: the folder holding one partition's Parquet parts; a shard's are in
    `.../crawl=<crawl>/shard-<shard>` (the crawl folder is then every shard's: parquet_io reads it whole)."""
    return "/".join([root.rstrip("/"), *asset_key, f"crawl={crawl}", *([shard_folder(shard)] if shard else [])])


def lineage_uri(root: str, stage: str, crawl: str, shard: str | None = None) -> str:
    """Lineage rows of one stage for one crawl (or one shard of it)."""
    return "/".join([root.rstrip("/"), "lineage", f"stage={stage}", f"crawl={crawl}",
                     *([shard_folder(shard)] if shard else [])])


def crawl_uri(landing_root: str, crawl: str) -> str:
    """Where a crawl lands: a folder with `repos.jsonl` and archives, or Parquet files."""
    return "/".join([landing_root.rstrip("/"), crawl])
