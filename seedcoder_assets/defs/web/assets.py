"""The code-related web corpus (paper 2.2.3): web dumps in, pages out, per shard of a dump; then the dump's
dedup; then the LLM half (core/web/judge.py): oracle labels of a sample, the fastText recall model, recalled
pages and their oracle scores per shard, and the dump's corpus by category threshold and rate. The stages are declared in core/pipeline.py; these wrappers add their metadata and their checks
(core/web/checks.py: measured with warcio, Python's html.parser and DuckDB, not the code that wrote them)."""

import json

import dagster as dg
import pyarrow.compute as pc

from seedcoder_assets.core import pipeline
from seedcoder_assets.core.parquet_io import PartWriter, is_complete, mark_shards, read_table
from seedcoder_assets.core.pipeline import (
    DEDUPED_WEB_PAGES,
    RECALLED_WEB_PAGES,
    WEB_CORPUS,
    WEB_LABEL_SAMPLE,
    WEB_ORACLE_LABELS,
    WEB_PAGE_SCORES,
    WEB_PAGES,
    WEB_RECALL_MODEL,
)
from seedcoder_assets.core.quality.labels import SAMPLE_SCHEMA, LabelCache, request_fingerprint
from seedcoder_assets.core.web.checks import (
    code_blocks_verbatim,
    corpus_respects_thresholds,
    no_exact_duplicate_left,
    no_short_page,
    recall_on_held_out,
    records_accounted,
    scores_cover_recalled,
)
from seedcoder_assets.core.web.judge import (
    WEB_LABEL_SCHEMA,
    RecallApply,
    histograms,
    judge_pages,
    recall_examples,
    sample_pages,
    score_pages,
)
from seedcoder_assets.core.web.pages import warc_files
from seedcoder_assets.core.web.prompt import WEB_PROMPT_VERSION
from seedcoder_assets.core.web.recall import MODEL_FILE, train_recall, version_of
from seedcoder_assets.defs.configs import (
    DedupConfig,
    WebCorpusConfig,
    WebLabelSampleConfig,
    WebOracleConfig,
    WebPageConfig,
    WebRecallConfig,
)
from seedcoder_assets.lib.dagster_utils import (
    check_result,
    oracle_step_result,
    prior_crawls,
    reconciles_check,
    run_declared,
    stage_run,
    stats_metadata,
)
from seedcoder_assets.lib.plots import bar_chart_markdown, histograms_by_group_markdown, pr_curve_markdown
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.partitions import WEB_DUMP_PARTITIONS_NAME, shard_keys, split_key
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource

RECALL_MODEL_NAME = "web_recall"  # its name in the model store


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


# -- the LLM half: labels, the recall model, recalled pages, scores, the corpus ------------------------
def _counts(table, column: str) -> dict:
    return {v["values"]: v["counts"] for v in pc.value_counts(table[column]).to_pylist() if v["values"] is not None}


@dg.asset(**asset_kwargs(WEB_LABEL_SAMPLE))
def web_label_sample(context: dg.AssetExecutionContext, config: WebLabelSampleConfig,
                     storage: StorageResource) -> dg.MaterializeResult:
    """Which deduplicated pages of a dump the oracle labels for the recall model: a seeded sample per stratum."""
    dump = context.partition_key
    sample = sample_pages(storage.uri(DEDUPED_WEB_PAGES, dump), config.quotas(), config.seed,
                          storage.duckdb_memory_limit)
    dst = storage.uri(WEB_LABEL_SAMPLE, dump)
    with PartWriter(dst, SAMPLE_SCHEMA) as out:
        out.write_table(sample)
    hosts = _counts(sample, "repo")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": sample.num_rows, "requested": dg.MetadataValue.json(config.quotas()),
        "per_stratum": dg.MetadataValue.json(_counts(sample, "language")), "seed": config.seed, "sites": len(hosts),
        "pages_per_site": bar_chart_markdown("pages to label per site (top 20)",
                                             dict(sorted(hosts.items(), key=lambda kv: -kv[1])[:20]), "site"),
        "uri": dg.MetadataValue.path(dst)})


def _judge(context: dg.AssetExecutionContext, config: WebOracleConfig, storage: StorageResource,
           oracle: OracleResource, asset: pipeline.Key, ask, extra: dict) -> dg.MaterializeResult:
    """Have the oracle (through the cache) answer about this shard's pages: `ask(settings, cache, write)`
    hands the answer rows to `write` and returns the run's figures. Writes them, says what they are."""
    settings = oracle.require("web")
    dump, shard = split_key(context.partition_key)
    mark_shards(storage.uri(asset, dump), shard_keys())
    cache = LabelCache(storage.label_cache_uri(), settings.model, WEB_PROMPT_VERSION,
                       request=request_fingerprint(settings, config.max_content_chars))
    dst = storage.uri(asset, dump, shard)
    with PartWriter(dst, WEB_LABEL_SCHEMA) as out:
        run = ask(settings, cache, out.write_table)
    answers = read_table(dst, ["status", "rating", "code_related", "category"])
    ok = answers.filter(pc.equal(answers["status"], "ok"))
    ok_share = ok.num_rows / answers.num_rows if answers.num_rows else 1.0
    check = dg.AssetCheckResult(check_name="answers_parsed", passed=ok_share >= config.min_ok_fraction,
                                metadata={"ok_share": round(ok_share, 4), "bound": config.min_ok_fraction})
    return oracle_step_result(run, settings.model, WEB_PROMPT_VERSION, _counts(ok, "rating"), check, {
        **extra, "dagster/row_count": answers.num_rows,
        "code_related": dg.MetadataValue.json(_counts(ok, "code_related")),
        "categories": dg.MetadataValue.json(_counts(ok, "category")), "uri": dg.MetadataValue.path(dst)})


_ANSWERS_PARSED = "the share of pages whose answer parsed (category, code-related, rating) is at least min_ok_fraction"


@dg.asset(**asset_kwargs(WEB_ORACLE_LABELS, code_version=f"{pipeline.stage(WEB_ORACLE_LABELS).code_version}-"
                                                          f"{WEB_PROMPT_VERSION}"),
          check_specs=[_check("answers_parsed", _ANSWERS_PARSED, WEB_ORACLE_LABELS)])
def web_oracle_labels(context: dg.AssetExecutionContext, config: WebOracleConfig, storage: StorageResource,
                      oracle: OracleResource) -> dg.MaterializeResult:
    """The oracle's judgement of the sampled pages this shard holds (the recall model's labels)."""
    dump, shard = split_key(context.partition_key)
    pages = storage.uri(DEDUPED_WEB_PAGES, dump, shard)
    dump_sample = read_table(storage.uri(WEB_LABEL_SAMPLE, dump))
    sample = dump_sample.filter(pc.is_in(dump_sample["id"], read_table(pages, ["id"])["id"]))

    def ask(settings, cache, write):  # a bounded sample: asked in one go
        answers, run = judge_pages(sample, pages, settings, cache, context.run.run_id, config.max_content_chars,
                                   config.retry_parse_failures)
        write(answers)
        return run

    return _judge(context, config, storage, oracle, WEB_ORACLE_LABELS, ask, {"dump_sample": dump_sample.num_rows})


@dg.asset(**asset_kwargs(WEB_RECALL_MODEL),
          check_specs=[_check("recall_meets_target", "the stored model, loaded by fastText, at its threshold, "
                                                     "recalls at least min_check_recall of the code-related pages "
                                                     "(without code tags) of sites that neither trained it nor "
                                                     "fitted the threshold", WEB_RECALL_MODEL)])
def web_recall_model(context: dg.AssetExecutionContext, config: WebRecallConfig,
                     storage: StorageResource) -> dg.MaterializeResult:
    """A fastText classifier of code-related pages, versioned by (labels, parameters): the same labels train
    it once, and a new version marks every dump's recalled pages stale."""
    params = config.to_params()
    dumps = [d for d in context.instance.get_dynamic_partitions(WEB_DUMP_PARTITIONS_NAME)
             if is_complete(storage.uri(WEB_ORACLE_LABELS, d))]
    examples = recall_examples([(storage.uri(WEB_ORACLE_LABELS, d), storage.uri(DEDUPED_WEB_PAGES, d))
                                for d in dumps], params.max_tokens, storage.duckdb_memory_limit)
    version = version_of(examples, params)
    models = storage.models()
    try:
        out, report, reused = models.train(RECALL_MODEL_NAME, version, lambda tmp: train_recall(examples, params, tmp))
    except ValueError as exc:  # too few labels or sites, or one class only
        raise dg.Failure(description=f"No recall model from the labels of {dumps}: {exc}") from exc
    models.publish(RECALL_MODEL_NAME, version)
    check = recall_on_held_out(str(out / MODEL_FILE), examples, set(report["checking_sites"]), report["threshold"],
                               config.min_check_recall)
    chosen = {"threshold": report["threshold"], "recall": report["check_recall"],
              "precision": report["check_precision"]}
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={"version": version, "reused": reused, "label_dumps": dg.MetadataValue.json(dumps),
                  "threshold": round(report["threshold"], 6), "target_recall": params.target_recall,
                  "fit_recall": round(report["fit_recall"], 4), "fit_precision": round(report["fit_precision"], 4),
                  "check_recall": round(report["check_recall"], 4),
                  "check_precision": round(report["check_precision"], 4),
                  "check_average_precision": round(report["check_average_precision"], 4),
                  "check_recalled_share": round(report["check_recalled_share"], 4),
                  "check_code_related_share": round(report["check_positive_share"], 4),
                  "n_train": report["n_train"], "n_fit": report["n_fit"], "n_check": report["n_check"],
                  "train_code_related": report["train_positive"],
                  "sites": dg.MetadataValue.json({k: report[k] for k in ("training_sites", "fitting_sites",
                                                                          "checking_sites")}),
                  "precision_recall": pr_curve_markdown(report["curve"], chosen),
                  "path": dg.MetadataValue.path(str(out))},
        check_results=[check_result("recall_meets_target", check)])


@dg.asset(**asset_kwargs(RECALLED_WEB_PAGES), check_specs=[
    _check("lineage_reconciles", "every deduplicated page has one fate; the kept ones are exactly the output",
           RECALLED_WEB_PAGES)])
def recalled_web_pages(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    path = storage.models().current(RECALL_MODEL_NAME)
    if path is None:
        raise dg.Failure(description="No recall model yet: materialize web/web_recall_model (it needs oracle "
                                     "labels: web/web_oracle_labels).")
    report = json.loads((path / "report.json").read_text())
    params = RecallApply(model_path=str(path / MODEL_FILE), threshold=report["threshold"], version=path.name,
                         max_tokens=report["params"]["max_tokens"])
    dump, shard = split_key(context.partition_key)
    stats, dst = run_declared(context, storage, RECALLED_WEB_PAGES, params)
    kept = read_table(dst, ["recall_branch"])
    return dg.MaterializeResult(
        metadata={**stats_metadata(stats, dst), "recall_version": path.name, "threshold": report["threshold"],
                  "branches": dg.MetadataValue.json(_counts(kept, "recall_branch"))},
        check_results=[reconciles_check(storage, RECALLED_WEB_PAGES, dump, dst,
                                        storage.uri(DEDUPED_WEB_PAGES, dump, shard), shard=shard)])


@dg.asset(**asset_kwargs(WEB_PAGE_SCORES, code_version=f"{pipeline.stage(WEB_PAGE_SCORES).code_version}-"
                                                        f"{WEB_PROMPT_VERSION}"),
          check_specs=[_check("answers_parsed", _ANSWERS_PARSED, WEB_PAGE_SCORES)])
def web_page_scores(context: dg.AssetExecutionContext, config: WebOracleConfig, storage: StorageResource,
                    oracle: OracleResource) -> dg.MaterializeResult:
    """The oracle's rating and site category of every recalled page of this shard."""
    dump, shard = split_key(context.partition_key)
    pages = storage.uri(RECALLED_WEB_PAGES, dump, shard)

    def ask(settings, cache, write):  # every recalled page: streamed a chunk at a time
        return score_pages(pages, settings, cache, context.run.run_id, config.max_content_chars, write,
                           config.retry_parse_failures)

    return _judge(context, config, storage, oracle, WEB_PAGE_SCORES, ask, {})


@dg.asset(**asset_kwargs(WEB_CORPUS), check_specs=[
    _check("lineage_reconciles", "every recalled page has one fate; the kept ones are exactly the output", WEB_CORPUS),
    _check("scores_respect_category_thresholds", "every kept page has an oracle answer whose rating (read from the "
                                                 "raw reply by DuckDB) reaches its category's threshold", WEB_CORPUS),
    _check("scores_cover_recalled_pages", "one score row per recalled page (none missing, none twice, none of "
                                          "another page), and few without a parsed answer", WEB_CORPUS)])
def web_corpus(context: dg.AssetExecutionContext, config: WebCorpusConfig,
               storage: StorageResource) -> dg.MaterializeResult:
    dump = context.partition_key
    params = config.to_params()
    stats, dst = run_declared(context, storage, WEB_CORPUS, params)
    scores_uri = storage.uri(WEB_PAGE_SCORES, dump)
    scores = read_table(scores_uri, ["status", "category", "rating"])
    before = scores.filter(pc.equal(scores["status"], "ok"))
    after = read_table(dst, ["category", "rating"])
    return dg.MaterializeResult(
        metadata={**stats_metadata(stats, dst), "thresholds": dg.MetadataValue.json(params.thresholds),
                  "rates": dg.MetadataValue.json(params.rates),
                  "scores_before": dg.MetadataValue.json(histograms(before)),
                  "scores_after": dg.MetadataValue.json(histograms(after)),
                  "kept_per_category": dg.MetadataValue.json(_counts(after, "category")),
                  "scores_by_category": histograms_by_group_markdown(
                      before, after, "category", "rating", params.threshold,
                      "oracle ratings per site category: all recalled pages, and kept")},
        check_results=[reconciles_check(storage, WEB_CORPUS, dump, dst, storage.uri(RECALLED_WEB_PAGES, dump)),
                       check_result("scores_respect_category_thresholds",
                                    corpus_respects_thresholds(dst, scores_uri, params)),
                       check_result("scores_cover_recalled_pages", scores_cover_recalled(
                           storage.uri(RECALLED_WEB_PAGES, dump), scores_uri, config.max_unscored_share))])
