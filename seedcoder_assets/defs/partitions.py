"""Every landed crawl, commit crawl and web dump is a dynamic partition of its source's set; registering
one adds it (the sets live in seedcoder_assets/partitions.py)."""

from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME, crawl_partitions

__all__ = ["CRAWL_PARTITIONS_NAME", "crawl_partitions"]
