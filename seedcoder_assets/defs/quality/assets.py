"""The model curates the data: oracle labels, the quality scorer, scores, and the corpora they select."""


import dagster as dg
import pyarrow.compute as pc

from seedcoder_assets import settings
from seedcoder_assets.core.checks import scorer_within_bounds, scores_respect_threshold
from seedcoder_assets.core.parquet_io import PartWriter, is_complete, mark_shards, read_table
from seedcoder_assets.core.pipeline import (
    FILE_SCORES,
    LABEL_SAMPLE,
    ORACLE_LABELS,
    QUALITY_FILES,
    QUALITY_SCORER,
    REPO_LEVEL_CORPUS,
    REPO_LEVEL_FILES,
    REPO_QUALITY,
    SYNTAX_CHECKED_FILES,
    stage,
)
from seedcoder_assets.core.quality.corpus import (
    score_files,
    score_repo_level,
    score_threshold,
    select_quality_files,
)
from seedcoder_assets.core.quality.labels import (
    LABEL_SCHEMA,
    SAMPLE_SCHEMA,
    LabelCache,
    label_sample,
    request_fingerprint,
    stratified_sample,
)
from seedcoder_assets.core.quality.prompt import PROMPT_VERSION
from seedcoder_assets.core.quality.scorer import (
    QualityScorer,
)
from seedcoder_assets.core.quality.training import (
    SCORER,
    NoBackbone,
    labelled_examples,
    resolve_backbone,
    train_or_reuse,
)
from seedcoder_assets.defs.configs import LabelSampleConfig, OracleLabelConfig, QualityCorpusConfig, ScorerConfigDg
from seedcoder_assets.lib.dagster_utils import check_result, oracle_step_result, reconciles_check, stats_metadata
from seedcoder_assets.lib.plots import (
    bar_chart_markdown,
    boxplot_by_rating_markdown,
    histograms_by_language_markdown,
    line_markdown,
)
from seedcoder_assets.lib.stage_assets import asset_kwargs, key, op_tags, partitions_of, spec
from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME, shard_keys, split_key
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource


@dg.asset(**asset_kwargs(LABEL_SAMPLE))
def oracle_label_sample(context: dg.AssetExecutionContext, config: LabelSampleConfig,
                        storage: StorageResource) -> dg.MaterializeResult:
    """Which syntax-checked files the oracle rates: a seeded sample stratified by language (the paper's Table 17)."""
    crawl, quotas = context.partition_key, config.scaled()
    sample = stratified_sample(storage.uri(SYNTAX_CHECKED_FILES, crawl), quotas, config.seed,
                               storage.duckdb_memory_limit)
    dst = storage.uri(LABEL_SAMPLE, crawl)
    with PartWriter(dst, SAMPLE_SCHEMA) as out:
        out.write_table(sample)
    per_language = {v["values"]: v["counts"] for v in sample["language"].value_counts().to_pylist()}
    short = {lang: f"{per_language.get(lang, 0)}/{q}" for lang, q in quotas.items() if per_language.get(lang, 0) < q}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": sample.num_rows, "requested": sum(quotas.values()), "seed": config.seed,
        "languages_short_of_quota": dg.MetadataValue.json(short),
        "per_language": bar_chart_markdown("files to label per language", per_language, "language"),
        "uri": dg.MetadataValue.path(dst)})


@dg.asset(
    **asset_kwargs(ORACLE_LABELS, code_version=f"{stage(ORACLE_LABELS).code_version}-{PROMPT_VERSION}"),
    check_specs=[dg.AssetCheckSpec("labels_answered", asset=key(ORACLE_LABELS))],
)
def oracle_labels(context: dg.AssetExecutionContext, config: OracleLabelConfig, storage: StorageResource,
                  oracle: OracleResource) -> dg.MaterializeResult:
    """The oracle's 0-10 rating of every sampled file of one shard (paper A.2.1 prompt), cached by (file,
    model, prompt version, request shape).

    Shards label in parallel, as many at once as the `oracle` pool allows (one per oracle server behind
    the endpoint). Only files without a cached answer are sent; answers are cached as they arrive, so an
    outage or a crash loses nothing that was answered, and the next run resumes.
    """
    settings = oracle.require()
    crawl, shard = split_key(context.partition_key)
    files = storage.uri(SYNTAX_CHECKED_FILES, crawl, shard)
    crawl_sample = read_table(storage.uri(LABEL_SAMPLE, crawl))  # this shard's part of it: the files it holds
    sample = crawl_sample.filter(pc.is_in(crawl_sample["id"], read_table(files, ["id"])["id"]))
    mark_shards(storage.uri(ORACLE_LABELS, crawl), shard_keys())
    cache = LabelCache(storage.label_cache_uri(), settings.model,
                       request=request_fingerprint(settings, config.max_content_chars))
    labels, run = label_sample(sample, files, settings, cache, context.run.run_id,
                               config.max_content_chars, config.retry_parse_failures)
    dst = storage.uri(ORACLE_LABELS, crawl, shard)
    with PartWriter(dst, LABEL_SCHEMA) as out:
        out.write_table(labels)
    ok = labels.filter(pc.equal(labels["status"], "ok"))
    ratings = {v["values"]: v["counts"] for v in ok["rating"].value_counts().to_pylist()}
    failures = labels.filter(pc.equal(labels["status"], "parse_failure"))
    ok_share = ok.num_rows / labels.num_rows if labels.num_rows else 1.0  # a shard with no sampled file
    if run.oracle.aborted:
        context.log.error(f"oracle judged down: {run.oracle.aborted}; {run.statuses['not_asked']} files left for a re-run")
    check = dg.AssetCheckResult(check_name="labels_answered", passed=ok_share >= config.min_ok_fraction,
                                metadata={"ok_share": round(ok_share, 4), "bound": config.min_ok_fraction})
    return oracle_step_result(run, settings.model, PROMPT_VERSION, ratings, check, {
        "dagster/row_count": labels.num_rows, "crawl_sample": crawl_sample.num_rows,
        "parse_failure_examples": dg.MetadataValue.json(
            [{"id": r["id"], "raw": (r["raw"] or "")[:300]} for r in failures.slice(0, 5).to_pylist()]),
        "uri": dg.MetadataValue.path(dst)})


def _label_partitions(context: dg.AssetExecutionContext, storage: StorageResource) -> list[str]:
    crawls = context.instance.get_dynamic_partitions(CRAWL_PARTITIONS_NAME)
    return [c for c in crawls if is_complete(storage.uri(ORACLE_LABELS, c))]


@dg.asset(
    **asset_kwargs(QUALITY_SCORER),
    check_specs=[dg.AssetCheckSpec("scorer_mae_within_bound", asset=key(QUALITY_SCORER))],
)
def quality_scorer(context: dg.AssetExecutionContext, config: ScorerConfigDg,
                   storage: StorageResource) -> dg.MaterializeResult:
    """A regression model fine-tuned on the oracle's ratings, versioned by (labels, backbone, config).

    Its data version is that hash, so a new model marks every score built from the old one stale.
    """
    try:
        backbone = resolve_backbone(config.backbone, settings.current().scorer_backbone)
    except NoBackbone as exc:
        raise dg.Failure(description=str(exc)) from exc
    crawls = _label_partitions(context, storage)
    examples, missing = labelled_examples([(storage.uri(ORACLE_LABELS, c), storage.uri(SYNTAX_CHECKED_FILES, c))
                                           for c in crawls])
    version, out, report, reused = train_or_reuse(storage.models(), examples, backbone, config.to_params(),
                                                  log=context.log.info)
    if reused:  # same inputs, same model: training again would only cost time
        context.log.info(f"scorer {version} already trained from the same inputs; reusing it")
    ev = report["evaluation"]
    table = "| rating | n | MAE | mean pred | median pred |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {r['rating']} | {r['n']} | {r['mae']:.2f} | {r['mean_pred']:.2f} | {r['median_pred']:.2f} |"
        for r in ev["per_rating"])
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "version": version, "backbone": backbone, "label_crawls": dg.MetadataValue.json(crawls),
            "labels_without_content": missing, "n_train": report["n_train"], "n_test": report["n_test"],
            "mae": round(ev["mae"], 4), "baseline_mae": round(ev["baseline_mae"], 4),
            # cMAE is the paper's mean over all 11 ratings; with a rating missing from the test set it is
            # undefined, and the mean over the ratings present is shown next to the missing ones.
            "cmae": None if ev["cmae"] != ev["cmae"] else round(ev["cmae"], 4),
            "cmae_over_ratings_present": round(ev.get("cmae_present", float("nan")), 4),
            "ratings_missing_from_test": dg.MetadataValue.json(ev["ratings_missing"]),
            "per_rating": dg.MetadataValue.md(table),
            "predicted_by_true_rating": boxplot_by_rating_markdown(ev["predictions"], ev["targets"]),
            "loss_curve": line_markdown("training loss (MSE, rating units)", report["loss_curve"], "step / 10"),
            "train_seconds": round(report["train_seconds"], 2),
            "train_tokens_per_s": round(report["train_tokens"] / max(report["train_seconds"], 1e-9), 1),
            "device": report["device"], "precision": report["precision"], "input_format": report["input_format"],
            "path": dg.MetadataValue.path(str(out)),
        },
        check_results=[check_result("scorer_mae_within_bound", scorer_within_bounds(
            ev["mae"], ev["baseline_mae"], config.max_mae, config.min_gain_over_baseline))],
    )


def _current_scorer(storage: StorageResource, batch_threads: int = 0) -> QualityScorer:
    path = storage.models().current(SCORER)
    if path is None:
        raise dg.Failure(description="No quality scorer has been trained yet: materialize quality/quality_scorer.")
    return QualityScorer.load(path, threads=batch_threads)


@dg.asset(**asset_kwargs(FILE_SCORES))
def file_quality_scores(context: dg.AssetExecutionContext, config: QualityCorpusConfig,
                        storage: StorageResource) -> dg.MaterializeResult:
    """The scorer's quality score for every syntax-checked file of one shard of a crawl (batched,
    length-bucketed, streamed): shards score in parallel, one GPU pod each."""
    scorer = _current_scorer(storage)
    crawl, shard = split_key(context.partition_key)
    if shard is not None:  # say which shards make up the crawl's scores before writing one
        mark_shards(storage.uri(FILE_SCORES, crawl), shard_keys())
    dst = storage.uri(FILE_SCORES, crawl, shard)
    stats = score_files(scorer, storage.uri(SYNTAX_CHECKED_FILES, crawl, shard), dst, config.batch_size)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": stats.files, "scorer_version": scorer.version, "device": scorer.device,
        "files_per_s": round(stats.files_per_s, 2), "tokens_per_s": round(stats.tokens_per_s, 1),
        "mb_per_s": round(stats.bytes / 1e6 / max(stats.seconds, 1e-9), 3), "seconds": round(stats.seconds, 2),
        "scores": bar_chart_markdown("files per score bucket", stats.histogram, "floor(score)"),
        "uri": dg.MetadataValue.path(dst)})


@dg.asset(
    **asset_kwargs(QUALITY_FILES),
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=key(QUALITY_FILES)),
                 dg.AssetCheckSpec("scores_respect_threshold", asset=key(QUALITY_FILES),
                                   description="by the scores partition: nothing kept below the threshold, "
                                               "nothing at or above it missing")],
)
def quality_files(context: dg.AssetExecutionContext, config: QualityCorpusConfig,
                  storage: StorageResource) -> dg.MaterializeResult:
    """The file-level corpus: syntax-checked files at or above the score threshold (or in the top quantile)."""
    crawl = context.partition_key
    scores_uri = storage.uri(FILE_SCORES, crawl)
    threshold = score_threshold(scores_uri, config.min_score, config.keep_quantile)
    version = pc.unique(read_table(scores_uri, ["scorer_version"])["scorer_version"]).to_pylist()
    dst = storage.uri(QUALITY_FILES, crawl)
    stats = select_quality_files(storage.uri(SYNTAX_CHECKED_FILES, crawl), scores_uri, dst,
                                 storage.lineage(stage(QUALITY_FILES).lineage_stage, crawl, context.run.run_id), threshold,
                                 ",".join(v for v in version if v), storage.duckdb_memory_limit)
    before = read_table(scores_uri, ["language", "score"])
    after = read_table(dst, ["language", "score"])
    syntax = storage.uri(SYNTAX_CHECKED_FILES, crawl)
    return dg.MaterializeResult(
        metadata={**stats_metadata(stats, dst), "threshold": round(threshold, 4),
                  "scorer_version": dg.MetadataValue.json(version),
                  "scores_by_language": histograms_by_language_markdown(before, after, threshold)},
        check_results=[reconciles_check(storage, QUALITY_FILES, crawl, dst, syntax),
                       check_result("scores_respect_threshold",
                                    scores_respect_threshold(dst, scores_uri, syntax, threshold))],
    )


@dg.multi_asset(
    specs=[
        spec(REPO_LEVEL_CORPUS,
             description="Repository-level files (repo dedup kept them whole), each with its quality score"),
        spec(REPO_QUALITY,  # mean file scores: built from the same scores as the corpus
             description="Per repository: files, bytes and mean file quality score (long-context selection)"),
    ],
    partitions_def=partitions_of(stage(REPO_LEVEL_CORPUS)), op_tags=op_tags(stage(REPO_LEVEL_CORPUS)),
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=key(REPO_LEVEL_CORPUS))],
)
def repo_level_corpus(context: dg.AssetExecutionContext, config: QualityCorpusConfig, storage: StorageResource):
    scorer = _current_scorer(storage)
    crawl = context.partition_key
    files_dst, repos_dst = storage.uri(REPO_LEVEL_CORPUS, crawl), storage.uri(REPO_QUALITY, crawl)
    stats, scoring = score_repo_level(scorer, storage.uri(REPO_LEVEL_FILES, crawl), storage.uri(FILE_SCORES, crawl),
                                      files_dst, repos_dst, storage.lineage(stage(REPO_LEVEL_CORPUS).lineage_stage, crawl, context.run.run_id),
                                      config.batch_size, storage.duckdb_memory_limit)
    repos = read_table(repos_dst, ["mean_score"])
    yield dg.MaterializeResult(asset_key=key(REPO_LEVEL_CORPUS), metadata={
        **stats_metadata(stats, files_dst), "scorer_version": scorer.version, "scores_reused": scoring.reused,
        "scored_here": scoring.files - scoring.reused, "files_per_s": round(scoring.files_per_s, 2),
        "scores": bar_chart_markdown("repo-level files per score bucket", scoring.histogram, "floor(score)")})
    buckets: dict[int, int] = {}
    for s in repos["mean_score"].to_pylist():
        buckets[int(s)] = buckets.get(int(s), 0) + 1
    yield dg.MaterializeResult(asset_key=key(REPO_QUALITY), metadata={
        "dagster/row_count": repos.num_rows, "scorer_version": scorer.version,
        "mean_score": bar_chart_markdown("repositories per mean file score", buckets, "floor(mean score)"),
        "uri": dg.MetadataValue.path(repos_dst)})
    yield reconciles_check(storage, REPO_LEVEL_CORPUS, crawl, files_dst, storage.uri(REPO_LEVEL_FILES, crawl),
                           asset_key=key(REPO_LEVEL_CORPUS))
