"""What the nightly backfill runs: partitions that are missing, or stale against their inputs."""

from __future__ import annotations

from dataclasses import dataclass

from seedcoder_assets.core import pipeline
from seedcoder_assets.partitions import shard_keys, shard_partition


@dataclass(frozen=True)
class CrawlState:
    """The latest materializations of one crawl partition (timestamps; None = never)."""

    files_at: float | None = None  # filters/syntax_checked_files (its oldest shard): the end of the GitHub branch
    sample_at: float | None = None  # quality/oracle_label_sample
    labels_at: float | None = None  # quality/oracle_labels (its oldest shard)
    scores_at: float | None = None  # quality/file_quality_scores
    scores_scorer: str | None = None  # the scorer version those scores came from
    corpus_at: float | None = None  # quality/quality_files
    github_missing: tuple[str, ...] = ()  # assets of the GitHub job (as declared) never materialized
    shards_missing: tuple[str, ...] = ()  # per-shard ingest assets with a shard of this crawl never materialized
    syntax_missing: tuple[str, ...] = ()  # the same for the per-shard assets after dedup (syntax, a stage added there)


def plan_backfill(states: dict[str, CrawlState], oracle_configured: bool, scorer: str | None
                  ) -> list[tuple[str, str, str]]:
    """(job, crawl, why) for every partition to (re)build, in pipeline order.

    A new scorer version makes every crawl's scores stale: re-scoring is this backfill over all
    crawl partitions. Labels are never re-asked for (they are cached per model and prompt).
    """
    plan = []
    for crawl, s in states.items():  # registration order: a crawl is deduplicated against the ones before it
        if s.shards_missing:  # shards first: the crawl's dedup reads every one of them
            plan.append(("github_shards_job", crawl, f"no {', '.join(s.shards_missing)} yet"))
        if s.github_missing:  # a stage added to the branch is missing too
            plan.append(("github_files_job", crawl, f"no {', '.join(s.github_missing)} yet"))
        if s.files_at is None or s.github_missing or s.shards_missing or s.syntax_missing:
            why = "no syntax-checked files yet" if s.files_at is None else \
                f"no {', '.join(s.syntax_missing)} yet" if s.syntax_missing else "deduplicated files rebuilt"
            plan.append(("github_syntax_job", crawl, why))
            continue  # the rest follows once files exist (next tick, or the declared automation)
        if s.sample_at is None:  # no oracle needed: it is what the labels will be asked for
            plan.append(("label_sample_job", crawl, "no label sample yet"))
        if oracle_configured and s.labels_at is None:  # then each shard asks for its part of the sample
            plan.append(("oracle_labels_job", crawl, "no oracle labels yet"))
        if scorer is None:
            continue
        if s.scores_at is None:
            why = "never scored"
        elif s.scores_scorer != scorer:
            why = f"scored by {s.scores_scorer}, current scorer is {scorer}"
        elif s.scores_at < s.files_at:
            why = "files changed after scoring"
        else:
            if s.corpus_at is None or s.corpus_at < s.scores_at:
                plan.append(("corpus_job", crawl, "corpus older than its scores"))
            continue
        plan += [("scoring_job", crawl, why), ("corpus_job", crawl, f"rescored: {why}")]
    return plan


def _latest(instance, key, crawl: str | None = None):
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[crawl] if crawl else None), limit=1).records
    return records[0].event_log_entry if records else None


def crawl_states(instance, crawls: list[str]) -> tuple[dict[str, CrawlState], str | None]:
    """Each crawl's state and the current scorer version, from the instance's event log (cheap: one
    latest-record query per asset and partition, no lake reads)."""
    import dagster as dg

    shards = shard_keys()

    def at(key: tuple[str, ...], crawl: str) -> float | None:
        """When the crawl's partition was last materialized; of a per-shard asset, its oldest shard (None
        while a shard never was)."""
        keys = [shard_partition(crawl, sh) for sh in shards] if pipeline.stage(key).sharded else [crawl]
        entries = [_latest(instance, dg.AssetKey(list(key)), k) for k in keys]
        return None if not entries or None in entries else min(e.timestamp for e in entries)

    scorer_entry = _latest(instance, dg.AssetKey(list(pipeline.QUALITY_SCORER)))
    scorer = None
    if scorer_entry is not None:
        version = scorer_entry.asset_materialization.metadata.get("version")
        scorer = version.value if version is not None else None
    github = [dg.AssetKey(list(k)) for s in pipeline.STAGES if s.job == pipeline.GITHUB and s.partitioned
              for k in s.writes]
    per_shard = [dg.AssetKey(list(k)) for s in pipeline.STAGES if s.job == pipeline.SHARDS for k in s.writes]
    after = [dg.AssetKey(list(k)) for s in pipeline.STAGES if s.job == pipeline.SYNTAX for k in s.writes]
    materialized = {k: instance.get_materialized_partitions(k) for k in github + per_shard + after}

    def missing(keys: list[dg.AssetKey], crawl: str) -> tuple[str, ...]:
        return tuple(k.to_user_string() for k in keys
                     if any(shard_partition(crawl, sh) not in materialized[k] for sh in shards))

    states = {}
    for crawl in crawls:
        # the oldest shard's scores (None while a shard has none): the crawl is as stale as its stalest shard
        shard_scores = [_latest(instance, dg.AssetKey(list(pipeline.FILE_SCORES)), shard_partition(crawl, sh))
                        for sh in shards]
        scores = None if None in shard_scores else min(shard_scores, key=lambda e: e.timestamp)
        scored_by = scores.asset_materialization.metadata.get("scorer_version") if scores else None
        states[crawl] = CrawlState(
            files_at=at(pipeline.SYNTAX_CHECKED_FILES, crawl), sample_at=at(pipeline.LABEL_SAMPLE, crawl),
            labels_at=at(pipeline.ORACLE_LABELS, crawl),
            scores_at=scores.timestamp if scores else None, scores_scorer=scored_by.value if scored_by else None,
            corpus_at=at(pipeline.QUALITY_FILES, crawl),
            github_missing=tuple(k.to_user_string() for k in github if crawl not in materialized[k]),
            shards_missing=missing(per_shard, crawl), syntax_missing=missing(after, crawl))
    return states, scorer


def plan_shards_then_dedup(crawls: list[str], per_shard: set[str], deduped: set[str], shard_job: str,
                           dedup_job: str, what: str) -> list[tuple[str, str, str]]:
    """(job, partition key, why) for a source whose per-shard job is followed by a per-crawl dedup (commit
    crawls, web dumps): each shard without output (a run that died, a shard added by hand), then each crawl
    whose shards are all in but whose dedup is not. `per_shard` and `deduped` are the materialized partition
    keys of the two assets. In registration order: a crawl is deduplicated against the crawls before it."""
    plan = []
    for crawl in crawls:
        missing = [shard_partition(crawl, s) for s in shard_keys() if shard_partition(crawl, s) not in per_shard]
        plan += [(shard_job, key, f"no {what} yet") for key in missing]
        if not missing and crawl not in deduped:
            plan.append((dedup_job, crawl, "not deduplicated yet"))
    return plan


def plan_commits_backfill(crawls: list[str], samples: set[str], deduped: set[str]) -> list[tuple[str, str, str]]:
    """The commits corpus's plan: commits_job per shard, then commits_dedup_job per crawl."""
    return plan_shards_then_dedup(crawls, samples, deduped, pipeline.COMMITS, pipeline.COMMITS_DEDUP, "commit samples")
