"""Every crawl is a dynamic partition; registering a crawl adds one."""

from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME, crawl_partitions

__all__ = ["CRAWL_PARTITIONS_NAME", "crawl_partitions"]
