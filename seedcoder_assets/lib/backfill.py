"""What the nightly backfill runs: partitions that are missing, or stale against their inputs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CrawlState:
    """The latest materializations of one crawl partition (timestamps; None = never)."""

    files_at: float | None = None  # filters/syntax_checked_files: the end of the GitHub branch
    labels_at: float | None = None  # quality/oracle_labels
    scores_at: float | None = None  # quality/file_quality_scores
    scores_scorer: str | None = None  # the scorer version those scores came from
    corpus_at: float | None = None  # quality/quality_files


def plan_backfill(states: dict[str, CrawlState], oracle_configured: bool, scorer: str | None
                  ) -> list[tuple[str, str, str]]:
    """(job, crawl, why) for every partition to (re)build, in pipeline order.

    A new scorer version makes every crawl's scores stale: re-scoring is this backfill over all
    crawl partitions. Labels are never re-asked for (they are cached per model and prompt).
    """
    plan = []
    for crawl, s in states.items():  # registration order: a crawl is deduplicated against the ones before it
        if s.files_at is None:
            plan.append(("github_files_job", crawl, "no syntax-checked files yet"))
            continue  # the rest follows once files exist (next tick, or the follow-up sensor)
        if oracle_configured and s.labels_at is None:
            plan.append(("oracle_labels_job", crawl, "no oracle labels yet"))
        if scorer is None:
            continue
        if s.scores_at is None:
            plan.append(("scoring_job", crawl, "never scored"))
        elif s.scores_scorer != scorer:
            plan.append(("scoring_job", crawl, f"scored by {s.scores_scorer}, current scorer is {scorer}"))
        elif s.scores_at < s.files_at:
            plan.append(("scoring_job", crawl, "files changed after scoring"))
        elif s.corpus_at is None or s.corpus_at < s.scores_at:
            plan.append(("scoring_job", crawl, "corpus older than its scores"))
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

    def at(key: list[str], crawl: str) -> float | None:
        entry = _latest(instance, dg.AssetKey(key), crawl)
        return entry.timestamp if entry else None

    scorer_entry = _latest(instance, dg.AssetKey(["quality", "quality_scorer"]))
    scorer = None
    if scorer_entry is not None:
        version = scorer_entry.asset_materialization.metadata.get("version")
        scorer = version.value if version is not None else None
    states = {}
    for crawl in crawls:
        scores = _latest(instance, dg.AssetKey(["quality", "file_quality_scores"]), crawl)
        scored_by = scores.asset_materialization.metadata.get("scorer_version") if scores else None
        states[crawl] = CrawlState(
            files_at=at(["filters", "syntax_checked_files"], crawl), labels_at=at(["quality", "oracle_labels"], crawl),
            scores_at=scores.timestamp if scores else None, scores_scorer=scored_by.value if scored_by else None,
            corpus_at=at(["quality", "quality_files"], crawl))
    return states, scorer
