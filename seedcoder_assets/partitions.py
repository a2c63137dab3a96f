"""Partition definitions, one dynamic set per kind of source (outside defs/ so core-adjacent helpers can
import them without cycles). A landed GitHub crawl, commit crawl or web dump is registered as a partition
of its source's set; lineage rows carry the source next to the partition key.

Per-record stages of a GitHub crawl run per *shard*: the partitions of those assets are crawl x shard, with a
static shard dimension of `SEEDCODER_SHARDS` slots (docs/shards.md says why static: Dagster's partition
mappings map a crawl to all of its shards and a shard to its crawl only when every crawl has the same
shard keys). Per-crawl stages depend on every shard of their crawl (MultiToSingleDimensionPartitionMapping).
"""

import dagster as dg

from seedcoder_assets import settings

CRAWL_PARTITIONS_NAME = "crawl"  # GitHub repository crawls (the name predates the other sources)
COMMIT_CRAWL_PARTITIONS_NAME = "commit_crawl"  # bare git repositories or bundles with a manifest
WEB_DUMP_PARTITIONS_NAME = "web_dump"  # WARC files of one web dump
CRAWL_DIM, SHARD_DIM = "crawl", "shard"

crawl_partitions = dg.DynamicPartitionsDefinition(name=CRAWL_PARTITIONS_NAME)
commit_crawl_partitions = dg.DynamicPartitionsDefinition(name=COMMIT_CRAWL_PARTITIONS_NAME)
web_dump_partitions = dg.DynamicPartitionsDefinition(name=WEB_DUMP_PARTITIONS_NAME)

BY_SOURCE: dict[str, dg.DynamicPartitionsDefinition] = {
    "github": crawl_partitions, "commits": commit_crawl_partitions, "web": web_dump_partitions}


def shard_keys(shards: int | None = None) -> list[str]:
    """The shard dimension's keys: 000, 001, ... (the deployment's number of shard slots)."""
    n = settings.current().shards if shards is None else shards
    return [f"{i:03d}" for i in range(n)]


def sharded(source: dg.DynamicPartitionsDefinition) -> dg.MultiPartitionsDefinition:
    """`source` x shard: the partitions of a per-shard stage (read when the definitions load)."""
    return dg.MultiPartitionsDefinition({CRAWL_DIM: source, SHARD_DIM: dg.StaticPartitionsDefinition(shard_keys())})


def split_key(key: str) -> tuple[str, str | None]:
    """A partition key -> (crawl, shard), shard None for a per-crawl partition. A multi-partition key reads
    `<crawl>|<shard>` (dimensions in name order); crawl names never hold a `|` (landing.CRAWL_NAME)."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[CRAWL_DIM], dims[SHARD_DIM]
    crawl, _, shard = key.partition("|")
    return crawl, shard or None


def shard_partition(crawl: str, shard: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({CRAWL_DIM: crawl, SHARD_DIM: shard})


def job_partition_keys(job: str, crawl: str) -> list[str]:
    """The partitions of a job (by name) that make up crawl partition `crawl`: each of its shards for a job
    of per-shard stages (core/pipeline.py declares which), else the crawl."""
    from seedcoder_assets.core import pipeline

    if any(s.sharded for s in pipeline.STAGES if s.job == job):
        return [shard_partition(crawl, s) for s in shard_keys()]
    return [crawl]
