"""Checks of the commits corpus, measured on what was written, with git itself (the CLI, not the libgit2
that made the samples) and DuckDB; each has a test that feeds it bad output and sees it fail."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from typing import Any

from seedcoder_assets.core.checks import CheckOutcome
from seedcoder_assets.core.commits.filters import BOT
from seedcoder_assets.core.commits.verify import patch_applies, target_diff
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import duckdb_source, read_table

GitDir = Callable[[str], str]  # repository name -> a local git folder of it


def targets_apply(samples_uri: str, git_dir: GitDir, k: int = 50, seed: int = 0) -> CheckOutcome:
    """A seeded sample of `k` samples: each target's diffs apply to the parent's tree (`git apply --check`)."""
    t = read_table(samples_uri, ["id", "repo", "parent", "prompt_chars"])
    rows = t.to_pylist()
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(k, len(rows))))
    if not picked:
        return CheckOutcome(True, {"checked": 0})
    ids = [rows[i]["id"] for i in picked]
    con = duckdb_connect()
    con.execute(f"CREATE VIEW s AS SELECT id, text FROM {duckdb_source(samples_uri)}")
    texts = dict(con.execute("SELECT id, text FROM s WHERE id IN (SELECT unnest($1))", [ids]).fetchall())
    failures: list[dict[str, Any]] = []
    for i in picked:
        r = rows[i]
        problem = patch_applies(git_dir(r["repo"]), r["parent"], target_diff(texts[r["id"]], r["prompt_chars"]))
        if problem:
            failures.append({"id": r["id"], "git": problem[:200]})
    return CheckOutcome(not failures, {"checked": len(picked), "not_applying": len(failures), "examples": failures[:5]})


def no_merge_or_bot_left(samples_uri: str, git_dir: GitDir) -> CheckOutcome:
    """Every kept commit, looked up in `git log` of its repository: one parent at most, no bot author."""
    t = read_table(samples_uri, ["repo", "commit"])
    by_repo: dict[str, set[str]] = {}
    for repo, sha in zip(t.column("repo").to_pylist(), t.column("commit").to_pylist(), strict=True):
        by_repo.setdefault(repo, set()).add(sha)
    merges, bots, unknown = [], [], 0
    for repo, shas in sorted(by_repo.items()):
        out = subprocess.run(["git", "--git-dir", git_dir(repo), "log", "--all", "-z", "--format=%H%x1f%P%x1f%an%x1f%ae"],
                             capture_output=True, check=True).stdout.decode("utf-8", errors="replace")
        found = 0
        for record in filter(None, (x.strip("\n") for x in out.split("\0"))):
            sha, parents, name, email = record.split("\x1f")
            if sha not in shas:
                continue
            found += 1
            if len(parents.split()) > 1:
                merges.append(f"{repo}@{sha}")
            if BOT.search(name) or BOT.search(email.split("@")[0]):
                bots.append(f"{repo}@{sha}")
        unknown += len(shas) - found
    return CheckOutcome(not merges and not bots and not unknown,
                        {"commits": t.num_rows, "merges": len(merges), "bots": len(bots),
                         "not_in_repository": unknown, "examples": (merges + bots)[:5]})


def samples_within_budget(samples_uri: str, max_chars: int) -> CheckOutcome:
    """Every sample at most `max_chars` characters, its target where `prompt_chars` says, shaped as documented."""
    con = duckdb_connect()
    con.execute(f"CREATE VIEW s AS SELECT * FROM {duckdb_source(samples_uri)}")
    n, over, bad_split, longest = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE length(text) > $1), "
        "count(*) FILTER (WHERE NOT starts_with(text[prompt_chars + 1:], '<changed_files>\n') "
        "OR NOT starts_with(text, '<commit_message>\n') OR NOT ends_with(text, '</diff>\n')), "
        "coalesce(max(length(text)), 0) FROM s", [max_chars]).fetchone()
    return CheckOutcome(over == 0 and bad_split == 0, {"samples": n, "over_budget": over, "malformed": bad_split,
                                                       "longest_chars": longest, "max_chars": max_chars})


def commits_accounted(lineage_uri: str, repos_uri: str, git_dir: GitDir) -> CheckOutcome:
    """Every commit on HEAD of every selected repository, counted by git itself (`git rev-list --count
    HEAD`), has exactly one lineage row in the samples stage, and no row names a repository that was not
    selected. A repository that could no longer be read at extraction has one row saying so (`<repo>@`)
    and is reported."""
    con = duckdb_connect()
    rows = con.execute(
        f"SELECT split_part(id, '@', 1) AS repo, count(*) FILTER (WHERE split_part(id, '@', 2) <> ''), "
        f"       count(DISTINCT id) FILTER (WHERE split_part(id, '@', 2) <> ''), "
        f"       bool_or(split_part(id, '@', 2) = '') "
        f"FROM {duckdb_source(lineage_uri)} GROUP BY 1").fetchall()
    lineage = {repo: (n, distinct, unreadable) for repo, n, distinct, unreadable in rows}
    selected = read_table(repos_uri, ["repo"])["repo"].to_pylist()
    mismatched, unreadable, commits = [], 0, 0
    for repo in selected:
        n, distinct, broken = lineage.get(repo, (0, 0, False))
        if broken:
            unreadable += 1
            continue
        out = subprocess.run(["git", "--git-dir", git_dir(repo), "rev-list", "--count", "HEAD"], capture_output=True,
                             text=True)
        on_head = int(out.stdout) if out.returncode == 0 else -1
        commits += max(on_head, 0)
        if n != on_head or distinct != n:
            mismatched.append({"repo": repo, "git_rev_list": on_head, "lineage_rows": n, "distinct_ids": distinct})
    stray = sorted(set(lineage) - set(selected))
    return CheckOutcome(not mismatched and not stray,
                        {"repos": len(selected), "commits": commits, "repos_mismatched": len(mismatched),
                         "rows_of_unselected_repos": len(stray), "repos_unreadable_at_extraction": unreadable,
                         "examples": mismatched[:5] + [{"unselected": r} for r in stray[:5]]})


def sample_lengths(samples_uri: str, tokenizer_path: str = "", k: int = 2_000, seed: int = 0) -> tuple[list[int], str]:
    """Lengths of a seeded sample of `k` samples: in tokens of the tokenizer at `tokenizer_path` (a local
    Hugging Face tokenizer folder or tokenizer.json), else in characters. Returns (lengths, unit)."""
    con = duckdb_connect()
    texts = [r[0] for r in con.execute(f"SELECT text FROM {duckdb_source(samples_uri)} "
                                       f"USING SAMPLE reservoir({int(k)} ROWS) REPEATABLE ({int(seed)})").fetchall()]
    if not tokenizer_path:
        return [len(t) for t in texts], "characters"
    from pathlib import Path

    from tokenizers import Tokenizer

    path = Path(tokenizer_path)
    tok = Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))
    return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)], f"tokens ({path.name})"


def no_same_change_left(samples_uri: str) -> CheckOutcome:
    """No two samples carry the same change, by git's own `git patch-id --stable` of their diffs (a hash of
    the changed lines that ignores whitespace and line numbers), not by the `patch_hash` dedup used."""
    import tempfile

    from seedcoder_assets.core.parquet_io import iter_batches

    ids: list[str] = []
    with tempfile.NamedTemporaryFile("w", suffix=".patches", encoding="utf-8") as f:
        for batch in iter_batches(samples_uri, ["id", "prompt_chars", "text"], 512):
            for i, p, t in zip(batch.column("id").to_pylist(), batch.column("prompt_chars").to_pylist(),
                               batch.column("text").to_pylist()):
                f.write(f"commit {len(ids):040x}\n\n{target_diff(t, p)}")
                ids.append(i)
        f.flush()
        with open(f.name, "rb") as patches:
            out = subprocess.run(["git", "patch-id", "--stable"], stdin=patches, capture_output=True, check=True).stdout
    by_patch: dict[str, list[str]] = {}
    for line in out.decode().splitlines():
        patch_id, row = line.split()
        by_patch.setdefault(patch_id, []).append(ids[int(row, 16)])
    dups = [v for v in by_patch.values() if len(v) > 1]
    return CheckOutcome(not dups, {"samples": len(ids), "patch_ids": len(by_patch),
                                   "samples_sharing_a_patch_id": sum(len(v) for v in dups), "examples": dups[:3]})
