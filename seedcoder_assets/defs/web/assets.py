"""The code-related web corpus (paper 2.2.3): web dumps in, pages out, per shard of a dump; then the dump's
dedup. The stages are declared in core/pipeline.py; these wrappers add their metadata and their checks
(core/web/checks.py: measured with warcio, Python's html.parser and DuckDB, not the code that wrote them)."""

import dagster as dg
import pyarrow.compute as pc

from seedcoder_assets.core import pipeline
from seedcoder_assets.core.parquet_io import read_table
from seedcoder_assets.core.pipeline import DEDUPED_WEB_PAGES, WEB_PAGES
from seedcoder_assets.core.web.checks import (
    code_blocks_verbatim,
    no_exact_duplicate_left,
    no_short_page,
    records_accounted,
)
from seedcoder_assets.core.web.pages import warc_files
from seedcoder_assets.defs.configs import DedupConfig, WebPageConfig
from seedcoder_assets.lib.dagster_utils import (
    check_result,
    prior_crawls,
    reconciles_check,
    run_declared,
    stage_run,
    stats_metadata,
)
from seedcoder_assets.lib.plots import bar_chart_markdown
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.partitions import split_key
from seedcoder_assets.resources.storage import StorageResource


def _check(name: str, description: str, asset: pipeline.Key) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=key(asset), description=description)


def _page_metadata(uri: str, title: str) -> dict:
    pages = read_table(uri, ["host", "code_tag"])
    if not pages.num_rows:
        return {}
    hosts = {v["values"]: v["counts"] for v in pc.value_counts(pages["host"]).to_pylist()}
    top = dict(sorted(hosts.items(), key=lambda kv: -kv[1])[:20])
    tagged = int(pc.sum(pages["code_tag"]).as_py() or 0)
    return {"code_tag_pages": tagged, "other_pages": pages.num_rows - tagged,
            "pages_per_host": bar_chart_markdown(f"{title} per host (top 20)", top, "host")}


@dg.asset(**asset_kwargs(WEB_PAGES), check_specs=[
    _check("lineage_reconciles", "every response or revisit record has one fate; the kept ones are the pages", WEB_PAGES),
    _check("records_accounted", "warcio re-reads the shard's WARC files: each response and revisit record has "
                                "exactly one lineage row", WEB_PAGES),
    _check("no_short_page", "DuckDB counts the words of every page: none under min_words", WEB_PAGES),
    _check("code_blocks_verbatim", "a sample of code-tagged pages re-read by warcio and parsed by html.parser: the "
                                   "stored <pre> blocks are the page's, whitespace and all", WEB_PAGES),
])
def web_pages(context: dg.AssetExecutionContext, config: WebPageConfig, storage: StorageResource) -> dg.MaterializeResult:
    dump, shard = split_key(context.partition_key)
    stats, dst = run_declared(context, storage, WEB_PAGES, config.to_params())
    dump_uri, lines = pipeline.landed_of(stage_run(context, storage, source="web"), "web")
    lineage = storage.lineage_uri(pipeline.stage(WEB_PAGES).lineage_stage, dump, shard)
    metadata = {**stats_metadata(stats, dst), **_page_metadata(dst, "pages")}
    return dg.MaterializeResult(metadata=metadata, check_results=[
        reconciles_check(storage, WEB_PAGES, dump, dst, shard=shard),
        check_result("records_accounted", records_accounted(lineage, dump_uri, [f for _, f in warc_files(dump_uri, lines)])),
        check_result("no_short_page", no_short_page(dst, config.min_words)),
        check_result("code_blocks_verbatim", code_blocks_verbatim(dst, dump_uri, config.code_check_sample)),
    ])


@dg.asset(**asset_kwargs(DEDUPED_WEB_PAGES), check_specs=[
    _check("lineage_reconciles", "every page has one fate; the kept ones are exactly the output", DEDUPED_WEB_PAGES),
    _check("no_exact_duplicate_left", "DuckDB's sha256 of every kept text: no two alike, none kept by an earlier dump",
           DEDUPED_WEB_PAGES),
])
def deduped_web_pages(context: dg.AssetExecutionContext, config: DedupConfig,
                      storage: StorageResource) -> dg.MaterializeResult:
    dump, _ = split_key(context.partition_key)
    stats, dst = run_declared(context, storage, DEDUPED_WEB_PAGES, config.to_params())
    earlier = [storage.uri(DEDUPED_WEB_PAGES, d) for d in prior_crawls(context)]
    return dg.MaterializeResult(metadata={**stats_metadata(stats, dst), **_page_metadata(dst, "deduplicated pages")},
                                check_results=[
        reconciles_check(storage, DEDUPED_WEB_PAGES, dump, dst, storage.uri(WEB_PAGES, dump)),
        check_result("no_exact_duplicate_left", no_exact_duplicate_left(dst, earlier))])
