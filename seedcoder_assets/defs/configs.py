"""Run config of the GitHub-branch assets; `to_params()` gives the core's frozen parameter models."""


import dagster as dg
from pydantic import Field

from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.survivor import SurvivorRule
from seedcoder_assets.core.filters.syntax import DEFAULT_MAX_ERROR_SHARE, DEFAULT_UNCHECKED, SyntaxParams
from seedcoder_assets.core.ingest.archives import ExtractParams


class IngestConfig(dg.Config):
    max_file_bytes: int = Field(1_000_000, description="Files larger than this are dropped as `oversized`")

    def to_params(self) -> ExtractParams:
        return ExtractParams(max_file_bytes=self.max_file_bytes)


class DedupConfig(dg.Config):
    survivor_rule: SurvivorRule = Field(SurvivorRule.stars_newest_lexical,
                                        description="Which copy of a duplicate set survives")
    ngram: int = Field(5, description="Word n-gram size of the shingles")
    num_perm: int = Field(128, description="MinHash permutations")
    bands: int = Field(32, description="LSH bands")
    rows: int = Field(4, description="Signature rows per LSH band")
    threshold: float = Field(0.7, description="Estimated Jaccard at or above which two files are near duplicates")

    def to_params(self) -> MinHashParams:
        return MinHashParams(ngram=self.ngram, num_perm=self.num_perm, bands=self.bands, rows=self.rows,
                             threshold=self.threshold)


class SyntaxConfig(dg.Config):
    default_max_error_share: float = Field(0.02, description="Max error share for languages not listed (0 = strict)")
    max_error_share: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MAX_ERROR_SHARE),
                                              description="Per-language max share of bytes under ERROR/MISSING nodes")
    unchecked_languages: list[str] = Field(default_factory=lambda: sorted(DEFAULT_UNCHECKED),
                                           description="Languages whose grammar is not trusted: pass as unchecked")
    recheck_sample: int = Field(2000, description="Kept files re-parsed by the no_syntax_errors_left check")

    def to_params(self) -> SyntaxParams:
        return SyntaxParams(default_max_error_share=self.default_max_error_share,
                            max_error_share=self.max_error_share,
                            unchecked_languages=frozenset(self.unchecked_languages))
