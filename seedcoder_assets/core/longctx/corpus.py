"""The long-context corpus of one crawl (paper 2.2.5): repositories whose mean file score passes a bar, each as
one or more sequences of its files in dependency order within a token budget; and the long files of the
file-level corpus.

Layout of a repository sequence (Qwen2.5-Coder's, close to StarCoder2's; the markers are parameters):

    <|repo_name|>owner/name
    <|file_sep|>path/of/first.py
    ...its content...
    <|file_sep|>path/of/second.py
    ...

Every file of the repository-level corpus is kept into exactly one sequence (lineage `output_id`: a merge)
or dropped with one reason: `repo_below_threshold`, or `file_over_budget` (the file-level set takes long
files). Repositories stream one at a time from DuckDB (ordered by repository), so memory holds the largest
repository, not the crawl.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from seedcoder_assets.core.features.code import import_refs
from seedcoder_assets.core.filters.syntax import parser_for
from seedcoder_assets.core.languages import grammar_of
from seedcoder_assets.core.longctx.graph import ORDER_GROUPS, RepoFile, build_graph
from seedcoder_assets.core.longctx.order import FILE_TOKEN, REPO_TOKEN, RepoSequence, repo_sequences
from seedcoder_assets.core.parquet_io import PartWriter, duckdb_source, iter_batches
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats

BELOW: Final = "repo_below_threshold"
OVER_BUDGET: Final = "file_over_budget"
TOO_SHORT: Final = "too_short"

SEQUENCE_SCHEMA: Final[pa.Schema] = pa.schema([
    ("id", pa.string()), ("crawl", pa.string()), ("repo", pa.string()), ("piece", pa.int32()),
    ("pieces", pa.int32()), ("file_ids", pa.list_(pa.string())), ("paths", pa.list_(pa.string())),
    ("languages", pa.list_(pa.string())),
    # import edges between the sequence's files, as positions in file_ids: (user, dependency)
    ("edges", pa.list_(pa.list_(pa.int32()))), ("cycle_breaks", pa.list_(pa.list_(pa.int32()))),
    ("unresolved_imports", pa.int64()), ("resolved_imports", pa.int64()),
    ("tokens", pa.int64()), ("size", pa.int64()), ("mean_score", pa.float64()), ("text", pa.large_string()),
])
LONG_FILE_SCHEMA: Final[pa.Schema] = FILE_SCHEMA.append(pa.field("score", pa.float32())).append(
    pa.field("tokens", pa.int64()))


class LongContextParams(BaseModel, frozen=True):
    min_repo_score: float = Field(6.0, description="A repository's mean file score at least this")
    min_repo_score_quantile: float | None = Field(None, description="Instead: this quantile of the crawl's "
                                                                    "repositories' mean scores")
    budget_tokens: int = Field(32_768, description="Most tokens of a sequence (paper: context grows to 32K)")
    min_file_tokens: int = Field(8_192, description="The file-level set: files of at least this many tokens")
    tokenizer: str = Field("", description="A local Hugging Face tokenizer (folder or tokenizer.json); empty: "
                                           "SEEDCODER_TOKENIZER, else the all-MiniLM-L6-v2 one the scorer ships")
    repo_token: str = REPO_TOKEN
    file_token: str = FILE_TOKEN
    seed: int = Field(0, description="Seed of the random order of HTML, SQL and Shell files")


def tokenizer_file(name: str) -> str:
    """The tokenizer.json a setting names (a file, or a folder holding one); empty: the configured default."""
    if not name:
        from seedcoder_assets import settings
        from seedcoder_assets.core.quality.scorer import minilm_path

        name = settings.current().tokenizer or minilm_path() or ""
    path = Path(name)
    path = path / "tokenizer.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {name!r}: set SEEDCODER_TOKENIZER or the stage's `tokenizer` "
                                "to a local Hugging Face tokenizer")
    return str(path)


@cache
def token_counter(name: str) -> Callable[[list[str]], list[int]]:
    """Tokens of each text, by a real tokenizer (no truncation, no special tokens), a batch per call."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_file(name))
    tok.no_truncation()
    tok.no_padding()

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in encode_in_batches(tok, texts)]

    return count


def encode_in_batches(tok, texts: list[str], max_chars: int = 4 << 20) -> list[list[int]]:
    """Each text's ids (no special tokens added). `encode_batch_fast` skips the character offsets (the same ids,
    1.7x the speed per core: benchmarks/bench_training.py). An encoding still holds several arrays per token (~25x its
    text): batches of at most `max_chars` keep a big repository from holding gigabytes."""
    out: list[list[int]] = []
    start = 0
    while start < len(texts):
        end, size = start, 0
        while end < len(texts) and (end == start or size + len(texts[end]) <= max_chars):
            size += len(texts[end])
            end += 1
        out += [e.ids for e in tok.encode_batch_fast(texts[start:end], add_special_tokens=False)]
        start = end
    return out


def sequence_id(crawl: str, repo: str, piece: int) -> str:
    return hashlib.sha256(f"{crawl}\0{repo}\0{piece}".encode()).hexdigest()[:24]


def repo_bar(con: duckdb.DuckDBPyConnection, repo_quality_uri: str, params: LongContextParams) -> float:
    if params.min_repo_score_quantile is None:
        return params.min_repo_score
    value = con.execute(f"SELECT quantile_cont(mean_score, ?) FROM {duckdb_source(repo_quality_uri)}",
                        [params.min_repo_score_quantile]).fetchone()[0]
    return float(value) if value is not None else params.min_repo_score


def repo_graph(files: list[RepoFile]):
    """The import graph of a repository's files, their imports read by tree-sitter."""
    refs = []
    for f in files:
        grammar = grammar_of(f.language, f.path) if ORDER_GROUPS.get(f.language or "") else None
        refs.append(import_refs(parser_for(grammar).parse(f.content.encode("utf-8", "replace")).root_node, grammar)
                    if grammar else [])
    return build_graph(files, refs)


def _repos(con: duckdb.DuckDBPyConnection, repo_files_uri: str, repo_quality_uri: str, bar: float):
    """(repo, mean score, selected, rows) per repository, one at a time, files by path."""
    result = con.execute(f"""
        SELECT f.id, f.repo, f.path, f.language, CASE WHEN q.mean_score >= ? THEN f.content END, f.size, q.mean_score
        FROM {duckdb_source(repo_files_uri)} f LEFT JOIN {duckdb_source(repo_quality_uri)} q USING (repo)
        ORDER BY f.repo, f.path, f.id""", [bar])  # the sort carries no content of a repository below the bar
    current, rows = None, []
    while batch := result.fetchmany(1024):
        for row in batch:
            if row[1] != current and rows:
                yield current, rows[0][6], rows[0][6] is not None and rows[0][6] >= bar, rows
                rows = []
            current = row[1]
            rows.append(row)
    if rows:
        yield current, rows[0][6], rows[0][6] is not None and rows[0][6] >= bar, rows


def build_sequences(crawl: str, repo_files_uri: str, repo_quality_uri: str, dst_uri: str, lineage: LineageWriter,
                    params: LongContextParams, con: duckdb.DuckDBPyConnection) -> StageStats:
    count = token_counter(params.tokenizer)
    bar = repo_bar(con, repo_quality_uri, params)
    resolved: Counter[str] = Counter()
    unresolved: Counter[str] = Counter()
    breaks = repos_selected = 0
    with PartWriter(dst_uri, SEQUENCE_SCHEMA) as out:
        for repo, mean, selected, rows in _repos(con, repo_files_uri, repo_quality_uri, bar):
            if not selected:
                for row in rows:
                    lineage.dropped(row[0], BELOW, row[5] or 0, detail=f"mean score {mean} < {bar:.3f}")
                continue
            repos_selected += 1
            files = [RepoFile(r[0], r[2], r[3], r[4]) for r in rows]
            graph = repo_graph(files)
            resolved.update(graph.resolved_imports)
            unresolved.update(graph.unresolved_imports)
            sequences, alone = repo_sequences(graph, repo, count, params.budget_tokens, params.seed,
                                              repo_token=params.repo_token, file_token=params.file_token)
            for i in alone:
                lineage.dropped(files[i].id, OVER_BUDGET, rows[i][5] or 0,
                                detail=f"over {params.budget_tokens} tokens alone: the file-level set's")
            out.write_rows([_row(crawl, repo, mean, s, len(sequences), graph, rows, lineage) for s in sequences])
            breaks += sum(len(s.breaks) for s in sequences)
    lineage.stats.extra.update({"repos_selected": repos_selected, "repo_bar": round(bar, 4), "cycle_breaks": breaks,
                                "resolved_imports": dict(resolved), "unresolved_imports": dict(unresolved)})
    return lineage.close()


def _row(crawl: str, repo: str, mean: float, s: RepoSequence, pieces: int, graph, rows, lineage) -> dict[str, Any]:
    sid = sequence_id(crawl, repo, s.piece)
    for i in s.files:
        lineage.kept(rows[i][0], rows[i][5] or 0, output_id=sid, detail=f"{repo} piece {s.piece}")
    return {"id": sid, "crawl": crawl, "repo": repo, "piece": s.piece, "pieces": pieces,
            "file_ids": [rows[i][0] for i in s.files], "paths": [rows[i][2] for i in s.files],
            "languages": [rows[i][3] for i in s.files], "edges": [list(e) for e in s.edges],
            "cycle_breaks": [list(e) for e in s.breaks],
            "unresolved_imports": sum(len(graph.unresolved[i]) for i in s.files),
            "resolved_imports": sum(len(graph.deps[i]) for i in s.files),
            "tokens": s.tokens, "size": len(s.text.encode("utf-8", "replace")), "mean_score": mean, "text": s.text}


def select_long_files(files_uri: str, dst_uri: str, lineage: LineageWriter, params: LongContextParams) -> StageStats:
    """The file-level long-context set: files of the file-level corpus with at least `min_file_tokens`
    tokens; the rest dropped as `too_short`. A file of fewer UTF-8 bytes than the bar is not tokenized (a
    token is at least one byte of the text, for byte-level BPE and WordPiece alike)."""
    count = token_counter(params.tokenizer)

    def decide(batch: pa.RecordBatch) -> Verdicts:
        contents = batch.column("content").to_pylist()
        sizes = batch.column("size").to_pylist()
        long = [i for i, n in enumerate(sizes) if (n or 0) >= params.min_file_tokens]  # fewer bytes: fewer tokens
        tokens = [0] * len(contents)
        for i, n in zip(long, count([contents[i] for i in long])):
            tokens[i] = n
        keep = [t >= params.min_file_tokens for t in tokens]

        mask = np.array(keep, bool)
        return Verdicts(mask, pa.array([None if k else TOO_SHORT for k in keep], pa.string()),
                        detail=pa.array([f"{t} tokens" for t in tokens], pa.string()),
                        output=batch.append_column("tokens", pa.array(tokens, pa.int64())).filter(pa.array(mask)))

    columns = [f.name for f in FILE_SCHEMA] + ["score"]
    return run_stage(iter_batches(files_uri, columns, batch_rows=256), dst_uri, lineage, decide, LONG_FILE_SCHEMA)
