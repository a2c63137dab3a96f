"""Which repositories of a commit crawl the commits corpus reads (paper 2.2.2): at least 100 stars, 10
forks, 100 commits and 100 days of maintenance. Each rejection is one named reason, the first that fails
in this order, so a repository's lineage row says what to change to keep it."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel


class RepoSelection(BaseModel, frozen=True):
    min_stars: int = 100
    min_forks: int = 10
    min_commits: int = 100  # commits reachable from HEAD, merges included
    min_days: int = 100  # days from the first to the last commit on HEAD


@dataclass(frozen=True)
class RepoHistory:
    commits: int
    first_commit_at: int  # seconds since the epoch (committer time)
    last_commit_at: int

    @property
    def days(self) -> float:
        return (self.last_commit_at - self.first_commit_at) / 86400


def rejection(stars: int | None, forks: int | None, history: RepoHistory, rule: RepoSelection) -> str | None:
    """None to keep the repository, else its reason. Unknown stars or forks count as zero: a manifest that
    does not say cannot vouch for the repository."""
    if (stars or 0) < rule.min_stars:
        return "few_stars"
    if (forks or 0) < rule.min_forks:
        return "few_forks"
    if history.commits < rule.min_commits:
        return "few_commits"
    if history.days < rule.min_days:
        return "short_maintenance"
    return None
