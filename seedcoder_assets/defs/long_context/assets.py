"""The long-context corpus (paper 2.2.5, core/longctx/): per crawl, the repositories above the score bar as
sequences of their files in import order within the token budget, and the long files of the file-level
corpus. Thin wrappers: the declared stages run, then their checks and pictures."""

import dagster as dg

from seedcoder_assets.core.longctx.checks import (
    every_file_once,
    files_long_enough,
    layout_matches,
    no_sequence_over_budget,
    python_imports_in_order,
)
from seedcoder_assets.core.longctx.corpus import repo_bar, tokenizer_file
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import duckdb_source
from seedcoder_assets.core.pipeline import (
    LONG_CONTEXT_FILES,
    LONG_CONTEXT_SEQUENCES,
    QUALITY_FILES,
    REPO_LEVEL_CORPUS,
    REPO_QUALITY,
)
from seedcoder_assets.defs.configs import LongContextConfig
from seedcoder_assets.lib.dagster_utils import check_result, reconciles_check, run_declared, stats_metadata
from seedcoder_assets.lib.plots import bar_chart_markdown, dependency_graph_markdown
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.resources.storage import StorageResource

BUCKETS = (2_048, 4_096, 8_192, 16_384, 32_768)


def _bucket(tokens: int) -> str:
    low = 0
    for high in BUCKETS:
        if tokens <= high:
            return f"{low // 1024}-{high // 1024}K"
        low = high
    return f">{BUCKETS[-1] // 1024}K"


def _check(name: str, description: str, asset=LONG_CONTEXT_SEQUENCES) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=key(asset), description=description)


@dg.asset(**asset_kwargs(LONG_CONTEXT_SEQUENCES), check_specs=[
    _check("lineage_reconciles", "every repository-level file has one fate; the kept ones name a stored sequence"),
    _check("every_file_once", "every file of a repository above the bar (recomputed from the files' scores) is in "
                              "exactly one sequence, or alone over the budget; none of another repository"),
    _check("imports_before_users", "in each sequence, every Python import (read by ast, resolved by Python's rules "
                                   "over the repository) of a file of the same sequence comes after it, unless "
                                   "recorded as a cycle break"),
    _check("no_sequence_over_budget", "every stored text, tokenized whole by the tokenizer, is within the budget"),
    _check("layout_matches", "each text is its repository's header, then a marker and path per listed file, in "
                             "order")])
def long_context_sequences(context: dg.AssetExecutionContext, config: LongContextConfig,
                           storage: StorageResource) -> dg.MaterializeResult:
    crawl = context.partition_key
    params = config.to_params()
    stats, dst = run_declared(context, storage, LONG_CONTEXT_SEQUENCES, params)
    files_uri = storage.uri(REPO_LEVEL_CORPUS, crawl)
    con = duckdb_connect(memory_limit=storage.duckdb_memory_limit)
    bar = repo_bar(con, storage.uri(REPO_QUALITY, crawl), params)
    seqs = con.execute(f"SELECT tokens, len(file_ids) AS n FROM {duckdb_source(dst)}").fetch_arrow_table()
    buckets: dict[str, int] = {}
    per_sequence: dict[int, int] = {}
    for tokens, n in zip(seqs["tokens"].to_pylist(), seqs["n"].to_pylist()):
        buckets[_bucket(tokens)] = buckets.get(_bucket(tokens), 0) + 1
        per_sequence[min(n, 50)] = per_sequence.get(min(n, 50), 0) + 1
    # The picture: the sequence with the most import edges among those small enough to read.
    pick = con.execute(f"""SELECT repo, piece, paths, edges, cycle_breaks FROM {duckdb_source(dst)}
                           WHERE len(paths) BETWEEN 4 AND 40 ORDER BY len(edges) DESC, repo, piece LIMIT 1""").fetchone() \
        if seqs.num_rows else None
    con.close()
    resolved, unresolved = stats.extra.get("resolved_imports", {}), stats.extra.get("unresolved_imports", {})
    imports = {lang: {"resolved": resolved.get(lang, 0), "unresolved": unresolved.get(lang, 0)}
               for lang in sorted(set(resolved) | set(unresolved))}
    metadata = {**stats_metadata(stats, dst), "sequences": seqs.num_rows, "repo_bar": round(bar, 4),
                "budget_tokens": params.budget_tokens, "tokenizer": tokenizer_file(params.tokenizer),
                "imports_per_language": dg.MetadataValue.json(imports),
                "sequences_per_length": bar_chart_markdown("sequences per length (tokens)", dict(
                    sorted(buckets.items(), key=lambda kv: [_bucket(b) for b in BUCKETS].index(kv[0])
                           if kv[0] in [_bucket(b) for b in BUCKETS] else 99)), "tokens"),
                "files_per_sequence": bar_chart_markdown("files per sequence (50: 50 or more)", per_sequence, "files")}
    if pick is not None:
        repo, piece, paths, edges, breaks = pick
        metadata["dependency_graph"] = dependency_graph_markdown(f"{repo} piece {piece}: imports", paths, edges, breaks)
    tokenizer = tokenizer_file(params.tokenizer)
    return dg.MaterializeResult(metadata=metadata, check_results=[
        reconciles_check(storage, LONG_CONTEXT_SEQUENCES, crawl, dst, files_uri),
        check_result("every_file_once", every_file_once(dst, files_uri, bar, tokenizer, params.budget_tokens,
                                                        params.repo_token, params.file_token)),
        check_result("imports_before_users", python_imports_in_order(dst, files_uri)),
        check_result("no_sequence_over_budget", no_sequence_over_budget(dst, tokenizer, params.budget_tokens)),
        check_result("layout_matches", layout_matches(dst, params.repo_token, params.file_token))])


@dg.asset(**asset_kwargs(LONG_CONTEXT_FILES), check_specs=[
    _check("lineage_reconciles", "every file of the file-level corpus has one fate; the kept ones are the output",
           LONG_CONTEXT_FILES),
    _check("files_long_enough", "every kept file, tokenized again, has at least min_file_tokens tokens",
           LONG_CONTEXT_FILES)])
def long_context_files(context: dg.AssetExecutionContext, config: LongContextConfig,
                       storage: StorageResource) -> dg.MaterializeResult:
    crawl = context.partition_key
    params = config.to_params()
    stats, dst = run_declared(context, storage, LONG_CONTEXT_FILES, params)
    return dg.MaterializeResult(
        metadata={**stats_metadata(stats, dst), "min_file_tokens": params.min_file_tokens},
        check_results=[reconciles_check(storage, LONG_CONTEXT_FILES, crawl, dst, storage.uri(QUALITY_FILES, crawl)),
                       check_result("files_long_enough", files_long_enough(
                           dst, tokenizer_file(params.tokenizer), params.min_file_tokens))])
