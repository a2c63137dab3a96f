"""Small helpers shared by the Dagster wrappers (kept outside defs/ so autoloading skips them)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import dagster as dg

from seedcoder_assets.core.stats import StageStats
from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME


def prior_crawls(context: dg.AssetExecutionContext) -> list[str]:
    """Crawls registered before this partition's crawl: what it is deduplicated against."""
    keys = list(context.instance.get_dynamic_partitions(CRAWL_PARTITIONS_NAME))
    crawl = context.partition_key
    return keys[: keys.index(crawl)] if crawl in keys else keys


def bar_chart_markdown(title: str, counts: Mapping[Any, int], xlabel: str, top: int = 30) -> dg.MetadataValue:
    """A small bar chart as a markdown image (the UI renders data-URI images in markdown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(counts.items(), key=lambda kv: -kv[1])[:top] if not all(isinstance(k, int) for k in counts) \
        else sorted(counts.items())
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=90)
    ax.bar([str(k) for k, _ in items], [v for _, v in items], color="#4f6fb3")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def stats_metadata(stats: StageStats, uri: str) -> dict[str, Any]:
    """MaterializeResult metadata: counts, bytes, drop reasons as JSON, time, where the data is."""
    md: dict[str, Any] = {}
    for key, value in stats.as_metadata().items():
        md[key] = dg.MetadataValue.json(value) if isinstance(value, (dict, list)) else value
    md["dagster/row_count"] = stats.rows_out
    md["uri"] = dg.MetadataValue.path(uri)
    if stats.drops:
        md["drop_reasons_chart"] = bar_chart_markdown(f"{stats.stage}: drop reasons", stats.drops, "reason")
    return {k: v for k, v in md.items() if v is not None}


def balanced_check(stats: StageStats, asset_key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
    """Every record that entered the stage has exactly one fate: kept + dropped == in."""
    return dg.AssetCheckResult(
        check_name="lineage_balanced", asset_key=asset_key, passed=stats.balanced,
        metadata={"rows_in": stats.rows_in, "kept": stats.rows_out, "dropped": stats.rows_dropped},
    )
