"""The survivor rule: which copy of a duplicate set is kept. Data, not code paths."""

from __future__ import annotations

from enum import StrEnum


class SurvivorRule(StrEnum):
    """Order in which duplicates compete; the first row wins.

    `stars_newest_lexical`: most stars, then most recently pushed, then repo and path
    (lexical) so ties are broken deterministically.
    """

    stars_newest_lexical = "stars_newest_lexical"
    newest_lexical = "newest_lexical"
    lexical = "lexical"

    def order_by(self) -> str:
        """SQL ORDER BY body over columns stars, pushed_at, repo, path."""
        a = ""
        keys = {
            "stars_newest_lexical": [f"{a}stars DESC NULLS LAST", f"{a}pushed_at DESC NULLS LAST"],
            "newest_lexical": [f"{a}pushed_at DESC NULLS LAST"],
            "lexical": [],
        }[self.value]
        return ", ".join([*keys, f"{a}repo", f"{a}path"])
