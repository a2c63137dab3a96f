"""The survivor rule: which copy of a duplicate set is kept. Data, not code paths.

A rule is an ordering over columns a source's records carry; the first record in that order survives.
Each source declares its own columns (SURVIVOR_ORDERS): GitHub files by stars, push date, repository and
path; web pages by fetch date and URL; commits by repository and commit date. Every order ends in
columns that identify a record, so ties are broken the same way on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


@dataclass(frozen=True)
class SurvivorOrder:
    keys: tuple[tuple[str, Literal["asc", "desc"]], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.keys)

    def order_by(self) -> str:
        """SQL ORDER BY body; missing values sort last whatever the direction."""
        return ", ".join(f"{c} DESC NULLS LAST" if d == "desc" else c for c, d in self.keys)


SURVIVOR_ORDERS: dict[str, SurvivorOrder] = {
    # The most-starred, most recently maintained copy: what users of the corpus would want attributed.
    "github": SurvivorOrder((("stars", "desc"), ("pushed_at", "desc"), ("repo", "asc"), ("path", "asc"))),
    # The latest fetch of a page (the content users see now), then the URL.
    "web": SurvivorOrder((("fetched_at", "desc"), ("url", "asc"))),
    # The earliest commit with a change: later copies are cherry-picks, reverts of reverts or forks.
    "commits": SurvivorOrder((("committed_at", "asc"), ("repo", "asc"), ("commit", "asc"))),
}


class SurvivorRule(StrEnum):
    """The GitHub branch's rules, by name (run config): orders over stars, pushed_at, repo and path.

    `stars_newest_lexical`: most stars, then most recently pushed, then repo and path (lexical) so ties
    are broken deterministically.
    """

    stars_newest_lexical = "stars_newest_lexical"
    newest_lexical = "newest_lexical"
    lexical = "lexical"

    def order(self) -> SurvivorOrder:
        keys = SURVIVOR_ORDERS["github"].keys
        return SurvivorOrder({"stars_newest_lexical": keys, "newest_lexical": keys[1:], "lexical": keys[2:]}[self.value])

    def order_by(self) -> str:
        return self.order().order_by()


def survivor_order(source: str, rule: SurvivorRule | None = None) -> SurvivorOrder:
    """The order a source's dedup stages use: GitHub's named rule (run config), else the source's own."""
    if source == "github":
        return (rule or SurvivorRule.stars_newest_lexical).order()
    return SURVIVOR_ORDERS[source]
