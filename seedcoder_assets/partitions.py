"""Partition definitions, one dynamic set per kind of source (outside defs/ so core-adjacent helpers can
import them without cycles). A landed GitHub crawl, commit crawl or web dump is registered as a partition
of its source's set; lineage rows carry the source next to the partition key."""

import dagster as dg

CRAWL_PARTITIONS_NAME = "crawl"  # GitHub repository crawls (the name predates the other sources)
COMMIT_CRAWL_PARTITIONS_NAME = "commit_crawl"  # bare git repositories or bundles with a manifest
WEB_DUMP_PARTITIONS_NAME = "web_dump"  # WARC files of one web dump

crawl_partitions = dg.DynamicPartitionsDefinition(name=CRAWL_PARTITIONS_NAME)
commit_crawl_partitions = dg.DynamicPartitionsDefinition(name=COMMIT_CRAWL_PARTITIONS_NAME)
web_dump_partitions = dg.DynamicPartitionsDefinition(name=WEB_DUMP_PARTITIONS_NAME)

BY_SOURCE: dict[str, dg.DynamicPartitionsDefinition] = {
    "github": crawl_partitions, "commits": commit_crawl_partitions, "web": web_dump_partitions}
