"""Partition definitions (outside defs/ so core-adjacent helpers can import them without cycles)."""

import dagster as dg

CRAWL_PARTITIONS_NAME = "crawl"

crawl_partitions = dg.DynamicPartitionsDefinition(name=CRAWL_PARTITIONS_NAME)
