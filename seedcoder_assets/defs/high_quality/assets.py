"""The high-quality set (paper 2.2.4, core/hq/): three rounds over every crawl's scored files, each a
versioned model in the model store with its seeds, negatives and recalled files beside it; then each
crawl's high-quality files from the last round, with lineage."""

import json

import dagster as dg

from seedcoder_assets.core.hq.corpus import held_out_recall, mean_score_above_crawl, no_hard_negative, select_hq_files
from seedcoder_assets.core.hq.rounds import RoundState, candidates_view, inputs_version, run_round
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import is_complete, read_table
from seedcoder_assets.core.pipeline import (
    FILE_FEATURES,
    FILE_SCORES,
    HIGH_QUALITY_FILES,
    HQ_ROUND_KEYS,
    SYNTAX_CHECKED_FILES,
    stage,
)
from seedcoder_assets.defs.configs import HQConfig
from seedcoder_assets.lib.dagster_utils import check_result, reconciles_check, stats_metadata
from seedcoder_assets.lib.plots import bar_chart_markdown
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME
from seedcoder_assets.resources.storage import StorageResource


def model_name(number: int) -> str:
    return f"hq_round_{number}"


def _scored_crawls(context: dg.AssetExecutionContext, storage: StorageResource) -> list[str]:
    return [c for c in context.instance.get_dynamic_partitions(CRAWL_PARTITIONS_NAME)
            if is_complete(storage.uri(FILE_SCORES, c)) and is_complete(storage.uri(FILE_FEATURES, c))]


def _round_dirs(storage: StorageResource, upto: int) -> list:
    dirs = [storage.models().current(model_name(n)) for n in range(1, upto + 1)]
    if any(d is None for d in dirs):
        missing = next(n for n, d in enumerate(dirs, 1) if d is None)
        raise dg.Failure(description=f"Round {missing} of the high-quality set is not built yet: materialize "
                                     f"high_quality/hq_round_{missing} (hq_rounds_job).")
    return dirs


def _preview(con, table_path, column: str, per_group: int = 5) -> dg.MetadataValue:
    """A few rows of a round's table per source or kind, with path and score, as a markdown table."""
    rows = con.execute(f"""
        SELECT t.{column}, c.repo, c.path, round(c.score, 2) FROM read_parquet('{table_path}') t
        JOIN candidates c USING (id)
        QUALIFY row_number() OVER (PARTITION BY t.{column} ORDER BY md5(t.id)) <= {per_group}
        ORDER BY t.{column}, c.repo, c.path""").fetchall()
    lines = [f"| {column} | repository | path | score |", "|---|---|---|---|"]
    lines += [f"| {g} | {repo} | `{path}` | {score} |" for g, repo, path, score in rows]
    return dg.MetadataValue.md("\n".join(lines))


def _round_asset(number: int) -> dg.AssetsDefinition:
    asset = HQ_ROUND_KEYS[number - 1]

    @dg.asset(**asset_kwargs(asset), check_specs=[dg.AssetCheckSpec("held_out_recall_within_bound", asset=key(asset),
                                             description="the stored model, loaded by fastText, recalls at least "
                                                         "min_held_out_recall of the held-out repositories' seeds "
                                                         "(their text read again from the lake)")])
    def _round(context: dg.AssetExecutionContext, config: HQConfig, storage: StorageResource) -> dg.MaterializeResult:
        params = config.to_params()
        crawls = _scored_crawls(context, storage)
        if not crawls:
            raise dg.Failure(description="No crawl has quality scores and file features yet: materialize "
                                         "quality/file_quality_scores (it needs the quality scorer) first.")
        previous = _round_dirs(storage, number - 1)[-1] if number > 1 else None
        files = [storage.uri(SYNTAX_CHECKED_FILES, c) for c in crawls]
        pairs = [(f, storage.uri(FILE_SCORES, c)) for c, f in zip(crawls, files)]
        con = duckdb_connect(memory_limit=storage.duckdb_memory_limit)
        candidates_view(con, [(storage.uri(FILE_SCORES, c), f, storage.uri(FILE_FEATURES, c))
                              for c, f in zip(crawls, files)])
        version = inputs_version(con, params, number, previous.name if previous else None)
        models = storage.models()

        def build(tmp):
            try:
                _, metrics = run_round(con, pairs, params, number, RoundState.read(previous) if previous else None, tmp)
            except ValueError as exc:  # no seeds, or one label: say what the sources selected
                raise dg.Failure(description=f"Round {number} cannot train: {exc}. Loosen the sources "
                                             "(sources_file) or score more crawls.") from exc
            return metrics | {"crawls": crawls}

        out, report, reused = models.train(model_name(number), version, build)
        models.publish(model_name(number), version)
        previews = {name: _preview(con, out / f"{name}.parquet", column) for name, column in (
            ("seeds", "source"), ("negatives", "kind"))}
        con.close()
        so_far = [json.loads((d / "report.json").read_text()) for d in _round_dirs(storage, number - 1)] + [report]
        check = held_out_recall(out, files, params.max_chars, params.recall_threshold, config.min_held_out_recall)

        def rounded(v):
            return None if v is None else round(v, 4)

        return dg.MaterializeResult(
            data_version=dg.DataVersion(version),
            metadata={
                "version": version, "reused": reused, "crawls": dg.MetadataValue.json(crawls),
                "quality_floor": round(report["quality_floor"], 4),
                "seeds": report["seeds"], "negatives": report["negatives"], "hard_negatives": report["hard_negatives"],
                "seeds_per_source": dg.MetadataValue.json(report["seeds_per_source"]),
                "held_out_recall": rounded(report["recall"]), "held_out_precision": rounded(report["precision"]),
                "held_out_negatives_recalled": rounded(report["negatives_recalled"]),
                "recalled": report["recalled"], "recalled_kinds": dg.MetadataValue.json(report["recalled_kinds"]),
                "recalled_above_floor_share": rounded(report["recalled_above_floor_share"]),
                "new_positives": report["new_positives"],
                "overlap_with_previous": rounded(report["overlap_with_previous"]),
                "new_positives_per_round": bar_chart_markdown(
                    "new positives per round (the loop converges as this falls)",
                    {r["round"]: r["new_positives"] for r in so_far}, "round"),
                "recalled_per_round": bar_chart_markdown("files recalled per round",
                                                         {r["round"]: r["recalled"] for r in so_far}, "round"),
                "seeds_preview": previews["seeds"], "negatives_preview": previews["negatives"],
                "path": dg.MetadataValue.path(str(out))},
            check_results=[check_result("held_out_recall_within_bound", check)])

    return _round


hq_round_1, hq_round_2, hq_round_3 = (_round_asset(n) for n in range(1, len(HQ_ROUND_KEYS) + 1))


@dg.asset(**asset_kwargs(HIGH_QUALITY_FILES), check_specs=[
    dg.AssetCheckSpec("lineage_reconciles", asset=key(HIGH_QUALITY_FILES)),
    dg.AssetCheckSpec("no_hard_negative", asset=key(HIGH_QUALITY_FILES),
                      description="no file of the corpus is in any round's hard negatives (their tables, by id)"),
    dg.AssetCheckSpec("mean_score_above_crawl", asset=key(HIGH_QUALITY_FILES),
                      description="the corpus's mean quality score (read from the scores by id) is above the crawl's")])
def high_quality_files(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    crawl = context.partition_key
    rounds = _round_dirs(storage, len(HQ_ROUND_KEYS))
    seen = json.loads((rounds[-1] / "report.json").read_text()).get("crawls", [])
    if crawl not in seen:  # the rounds never read this crawl: its corpus would be empty, not small
        raise dg.Failure(description=f"The high-quality rounds were built before crawl {crawl} was scored (they read "
                                     f"{seen}): materialize hq_rounds_job again, then this crawl's corpus.")
    dst, scores = storage.uri(HIGH_QUALITY_FILES, crawl), storage.uri(FILE_SCORES, crawl)
    files = storage.uri(SYNTAX_CHECKED_FILES, crawl)
    stats = select_hq_files(files, scores, rounds, dst,
                            storage.lineage(stage(HIGH_QUALITY_FILES).lineage_stage, crawl, context.run.run_id),
                            duckdb_connect(memory_limit=storage.duckdb_memory_limit))
    kept = read_table(dst, ["hq_source", "hq_round"])
    per_source: dict[str, int] = {}
    per_round: dict[int, int] = {}
    for source, number in zip(kept["hq_source"].to_pylist(), kept["hq_round"].to_pylist()):
        per_source[source] = per_source.get(source, 0) + 1
        per_round[number] = per_round.get(number, 0) + 1
    return dg.MaterializeResult(
        metadata={**stats_metadata(stats, dst), "rounds": dg.MetadataValue.json([d.name for d in rounds]),
                  "per_source": dg.MetadataValue.json(per_source),
                  "per_round": bar_chart_markdown("files per round they joined in (0: the first seeds)", per_round,
                                                  "round")},
        check_results=[reconciles_check(storage, HIGH_QUALITY_FILES, crawl, dst, files),
                       check_result("no_hard_negative", no_hard_negative(dst, rounds)),
                       check_result("mean_score_above_crawl", mean_score_above_crawl(dst, scores))])
