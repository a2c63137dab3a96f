"""What every dedup stage of a source is configured with: the MinHash scheme and the survivor rule."""

from __future__ import annotations

from pydantic import BaseModel, Field

from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.survivor import SurvivorRule


class DedupParams(BaseModel, frozen=True):
    minhash: MinHashParams = Field(default_factory=MinHashParams)
    survivor_rule: SurvivorRule = SurvivorRule.stars_newest_lexical
