"""BM25 over a repository's pre-commit snapshot that moves along the history instead of being rebuilt.

The sample's context is the top 5 code files of the pre-commit snapshot for the commit message (paper
2.2.2). Rebuilding an index per commit (SWE-bench builds one Lucene index per instance) tokenizes and
indexes the whole snapshot for every commit, though consecutive snapshots share almost every file.
`SnapshotIndex` keeps the postings of one snapshot and moves to the next by a tree diff (libgit2 skips
identical subtrees by id), re-tokenizing only files whose blob it has not seen (a cache by blob id makes
reverts, renames and branch switches free). Its scores are bm25s's Lucene variant on the same tokens, so
the top 5 equal those of a bm25s index rebuilt on that snapshot (benchmarks/bench_commits.py measures both
on every commit of the real histories and fails on a difference; seedcoder_assets_tests/core/
test_commit_samples.py compares them on every 9th).
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass

import pygit2
from bm25s.stopwords import STOPWORDS_EN

from seedcoder_assets.core.commits.filters import GENERATED, MINIFIED, NOT_CODE, VENDORED
from seedcoder_assets.core.languages import language_of

# Words of prose and code alike, in one pass: identifiers split at snake_case, camelCase, PascalCase,
# ACRONYMCase and digit boundaries ("parseHTTPFlags2" -> parse HTTP Flags 2).
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOP = frozenset(STOPWORDS_EN)


def code_terms(text: str) -> list[str]:
    """The words BM25 sees, lowercased, without one-character words and English stopwords. A message
    says "parse flags" where code says `parseFlags` or `parse_flags`; both must meet."""
    return [w for w in map(str.lower, _PART.findall(text)) if len(w) > 1 and w not in _STOP]


def term_counts(text: str) -> tuple[int, dict[str, int]]:
    """`code_terms` as (length, counts), lowercasing and filtering each distinct spelling once."""
    counts: dict[str, int] = {}
    for raw, n in Counter(_PART.findall(text)).items():
        word = raw.lower()
        if len(word) > 1 and word not in _STOP:
            counts[word] = counts.get(word, 0) + n
    return sum(counts.values()), counts


def is_document(path: str) -> bool:
    """A snapshot file BM25 may retrieve (if not over the size limit): a code file, not vendored,
    generated or minified."""
    if not path.isprintable() or VENDORED.search(path) or GENERATED.search(path) or MINIFIED.search(path):
        return False  # a path that is not UTF-8 could not be named in the sample
    language = language_of(path)
    return language is not None and language not in NOT_CODE


def document_text(path: str, data: bytes) -> str:
    """What is indexed: the path (its words name the module) and the content."""
    return path + "\n" + data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _Doc:
    blob: str
    length: int
    counts: dict[str, int]


class SnapshotIndex:
    """BM25 (Lucene idf, k1, b as bm25s's defaults) over the documents of one tree of `repo`."""

    def __init__(self, repo: pygit2.Repository, *, max_doc_bytes: int = 256_000, k1: float = 1.5, b: float = 0.75,
                 cache_blobs: int = 20_000) -> None:
        self.repo, self.max_doc_bytes, self.k1, self.b = repo, max_doc_bytes, k1, b
        self._tree: pygit2.Tree | None = None
        self._docs: dict[str, _Doc] = {}
        self._postings: dict[str, dict[str, int]] = {}
        self._total_len = 0
        self._blobs: OrderedDict[str, tuple[int, dict[str, int]] | None] = OrderedDict()  # by blob id: content
        self._cache_blobs = cache_blobs
        self.tokenized = 0  # blobs tokenized whole (cache misses): the work a rebuild would redo per commit
        self.patched = 0  # new versions counted from their old version and the line diff
        self.unreadable = 0  # document blobs missing from the object store

    @property
    def size(self) -> int:
        return len(self._docs)

    def paths(self) -> list[str]:
        return sorted(self._docs)

    def __contains__(self, path: str) -> bool:
        return path in self._docs

    def _content_terms(self, blob_id: pygit2.Oid, old_id: pygit2.Oid | None) -> tuple[int, dict[str, int]] | None:
        """(length, counts) of a blob's content, None for one over the size limit or unreadable. A new version
        of a file whose old version is known is counted from the old one and libgit2's line diff of the two:
        only the added and removed lines are tokenized (words never span lines), so an edit to a large file
        costs what the edit is."""
        key = str(blob_id)
        if key in self._blobs:
            self._blobs.move_to_end(key)
            return self._blobs[key]
        try:  # the size from the object's header first: a 100 MB blob is never read
            if self.repo.odb.read_header(blob_id)[1] > self.max_doc_bytes:
                hit = None
            else:
                before = self._blobs.get(str(old_id)) if old_id is not None else None
                hit = self._patched(before, old_id, blob_id) if before is not None else None
                if hit is None:
                    hit = term_counts(self.repo[blob_id].data.decode("utf-8", errors="replace"))
                    self.tokenized += 1
        except (KeyError, pygit2.GitError):  # missing from a damaged crawl: not retrievable, counted
            self.unreadable += 1
            return None
        self._blobs[key] = hit
        if len(self._blobs) > self._cache_blobs:
            self._blobs.popitem(last=False)
        return hit

    def _patched(self, before: tuple[int, dict[str, int]], old_id: pygit2.Oid, new_id: pygit2.Oid
                 ) -> tuple[int, dict[str, int]] | None:
        patch = self.repo[old_id].diff(self.repo[new_id], context_lines=0)
        if patch.delta.is_binary:
            return None
        added, removed = [], []
        for hunk in patch.hunks:
            for line in hunk.lines:
                if line.origin == "+":
                    added.append(line.content)
                elif line.origin == "-":
                    removed.append(line.content)
        counts = dict(before[1])
        for lines, sign in ((added, 1), (removed, -1)):  # joined by newlines: no word spans two lines
            for word, n in term_counts("\n".join(lines))[1].items():
                counts[word] = counts.get(word, 0) + sign * n
        counts = {w: n for w, n in counts.items() if n}
        self.patched += 1
        return sum(counts.values()), counts

    def _add(self, path: str, blob_id: pygit2.Oid, old_id: pygit2.Oid | None = None) -> None:
        if not is_document(path) or (content := self._content_terms(blob_id, old_id)) is None:
            return
        path_len, counts = term_counts(path + "\n")  # the document is its path, a newline, and its content
        for word, n in content[1].items():
            counts[word] = counts.get(word, 0) + n
        length = path_len + content[0]
        self._docs[path] = _Doc(str(blob_id), length, counts)
        self._total_len += length
        for term, tf in counts.items():
            self._postings.setdefault(term, {})[path] = tf

    def _remove(self, path: str) -> None:
        doc = self._docs.pop(path, None)
        if doc is None:
            return
        self._total_len -= doc.length
        for term in doc.counts:
            posting = self._postings[term]
            del posting[path]
            if not posting:
                del self._postings[term]

    def move_to(self, tree: pygit2.Tree | None) -> int:
        """Make the index that of `tree` (None: the empty tree of a root commit's parent). Returns how
        many paths changed."""
        if tree is None:
            changed = len(self._docs)
            for path in list(self._docs):
                self._remove(path)
            self._tree = None
            return changed
        if self._tree is not None and self._tree.id == tree.id:
            return 0
        try:
            diff = tree.diff_to_tree(swap=True) if self._tree is None else self.repo.diff(self._tree, tree)
            changed = 0
            for delta in diff.deltas:
                if delta.status != pygit2.enums.DeltaStatus.ADDED:
                    self._remove(delta.old_file.path)
                if delta.status != pygit2.enums.DeltaStatus.DELETED and delta.new_file.mode in (
                        pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE):
                    old = delta.old_file.id if delta.status == pygit2.enums.DeltaStatus.MODIFIED else None
                    self._add(delta.new_file.path, delta.new_file.id, old)
                changed += 1
        except Exception:  # a move cut short leaves postings of no tree: start empty, the next move rebuilds
            self.reset()
            raise
        self._tree = tree
        return changed

    def reset(self) -> None:
        """Forget the snapshot (the blob cache stays: it is keyed by content)."""
        self._tree, self._docs, self._postings, self._total_len = None, {}, {}, 0

    def top(self, query: str, k: int = 5) -> list[tuple[str, float]]:
        """The k documents of the current tree with the highest positive BM25 score for `query`, best
        first, ties by path. Each distinct query term counts once."""
        n = len(self._docs)
        if not n:
            return []
        avg_len = self._total_len / n
        scores: dict[str, float] = {}
        for term in sorted(set(code_terms(query))):  # a fixed order: float sums, so ties, the same every run
            posting = self._postings.get(term)
            if not posting:
                continue
            df = len(posting)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            norm = self.k1 * (1 - self.b)
            slope = self.k1 * self.b / avg_len if avg_len else 0.0
            docs = self._docs
            for path, tf in posting.items():
                scores[path] = scores.get(path, 0.0) + idf * tf / (norm + slope * docs[path].length + tf)
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [(p, s) for p, s in best if s > 0]


def rebuilt_top(repo: pygit2.Repository, tree: pygit2.Tree | None, query: str, k: int = 5,
                max_doc_bytes: int = 256_000, token_cache: dict | None = None) -> list[tuple[str, float]]:
    """The baseline: read and tokenize every document of `tree` and build a bm25s index for one query,
    as one index per commit does. Same documents, tokens and scoring as `SnapshotIndex`. With
    `token_cache` (a dict kept across calls), each blob is tokenized once and only the index is rebuilt."""
    import bm25s
    import numpy as np

    paths, corpus = [], []
    if tree is not None:
        stack = [("", tree)]
        while stack:
            prefix, t = stack.pop()
            for entry in t:
                if entry.type_str == "tree":
                    stack.append((f"{prefix}{entry.name}/", repo[entry.id]))
                elif entry.type_str == "blob" and entry.filemode in (pygit2.enums.FileMode.BLOB,
                                                                      pygit2.enums.FileMode.BLOB_EXECUTABLE):
                    path = prefix + entry.name
                    key = (entry.id, path)
                    if token_cache is not None and key in token_cache:
                        if token_cache[key] is not None:
                            paths.append(path)
                            corpus.append(token_cache[key])
                        continue
                    terms = None
                    if is_document(path) and repo.odb.read_header(entry.id)[1] <= max_doc_bytes:
                        terms = code_terms(document_text(path, repo[entry.id].data))  # as SnapshotIndex reads
                    if token_cache is not None:
                        token_cache[key] = terms
                    if terms is not None:
                        paths.append(path)
                        corpus.append(terms)
    terms = sorted(set(code_terms(query)))
    if not paths or not terms:
        return []
    index = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    index.index(corpus, show_progress=False)
    known = [index.vocab_dict[t] for t in terms if t in index.vocab_dict]
    if not known:
        return []
    scores = index.get_scores_from_ids(known)
    order = np.lexsort((np.array(paths), -scores))[:k]
    return [(paths[i], float(scores[i])) for i in order if scores[i] > 0]
