"""Build a real commit crawl from PyPI: successive releases of a project committed in order.

Each project becomes a bare git repository whose commits are its source distributions, oldest first:
the tree is the sdist's files, the commit date its upload time, and the message the release's entry in
the project's own changelog (CHANGES, HISTORY, CHANGELOG; `Release <version>` when there is none, which
the version-bump filter then drops, as it should). The sdists are fetched at run time from the package
index (sample_crawl.py: verified against the index's sha256, cached), never committed. The crawl folder
holds `<project>.bundle` files and `git_repos.jsonl`.

PyPI knows no stars or forks: the manifest leaves them null and says where the code came from, so
`commit_repos` with the paper's defaults drops every repository as `few_stars`; the demo lowers the
selection in its run config (deploy/demo/commits.yaml).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import re
import subprocess
import tarfile
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

import pygit2

from seedcoder_assets import settings
from seedcoder_assets.core.commits.corpus import COMMITS_MANIFEST
from seedcoder_assets.sample_crawl import INDEX_URL, Sdist, fetch, pick

# (project, how many most recent releases): small projects whose releases change a few files each.
DEMO: list[tuple[str, int]] = [("six", 10), ("idna", 14), ("itsdangerous", 9), ("markupsafe", 12), ("toolz", 10),
                               ("click", 10)]
CHANGELOGS = re.compile(r"(?i)^(changes|changelog|history|news|release[-_ ]?notes)(\.(rst|md|txt))?$")
MAX_MEMBER_BYTES = 5_000_000


def sdist_files(archive: Path) -> dict[str, bytes]:
    """An sdist's regular files, paths without the top folder (`project-1.0/`), unsafe paths skipped."""
    out: dict[str, bytes] = {}
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            members = [(i.filename, i.file_size, lambda i=i: z.read(i)) for i in z.infolist() if not i.is_dir()]
            return _strip(members)
    with tarfile.open(archive) as t:
        members = [(m.name, m.size, lambda m=m: t.extractfile(m).read()) for m in t.getmembers() if m.isfile()]
        out = _strip(members)
    return out


def _strip(members) -> dict[str, bytes]:
    out = {}
    for name, size, read in members:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if len(parts) < 2 or ".." in parts or size > MAX_MEMBER_BYTES:
            continue
        out["/".join(parts[1:])] = read()
    return out


def changelog_entry(files: dict[str, bytes], version: str, limit: int = 2_000) -> str | None:
    """The changelog's section for `version`: the lines after the heading that names it, up to the next
    version heading (reStructuredText and Markdown changelogs alike)."""
    for path in sorted(files, key=lambda p: (p.count("/"), p)):
        if not CHANGELOGS.match(path.rsplit("/", 1)[-1]):
            continue
        lines = files[path].decode("utf-8", errors="replace").splitlines()
        heading = re.compile(rf"^\W*(version\s+)?v?{re.escape(version)}\b", re.I)
        next_heading = re.compile(r"^\W*(version\s+)?v?\d+\.\d+(\.\d+)*\b", re.I)
        for i, line in enumerate(lines):
            if heading.match(line):
                body = []
                for nxt in lines[i + 1:]:
                    if next_heading.match(nxt):
                        break
                    body.append(nxt)
                text = "\n".join(x for x in body if not re.fullmatch(r"[-=~^*#]{3,}|\s*(released|unreleased).*",
                                                                     x.strip(), re.I)).strip()
                if text:
                    return text[:limit]
    return None


def build_history(repo_dir: Path, releases: list[tuple[Sdist, Path]]) -> pygit2.Repository:
    """A bare repository with one commit per release, oldest first."""
    repo = pygit2.init_repository(str(repo_dir), bare=True)
    parent: list[pygit2.Oid] = []
    for sdist, archive in releases:
        files = sdist_files(archive)
        index = pygit2.Index()
        for path, data in sorted(files.items()):
            index.add(pygit2.IndexEntry(path, repo.create_blob(data), pygit2.enums.FileMode.BLOB))
        tree = index.write_tree(repo)
        entry = changelog_entry(files, sdist.version)
        message = f"{sdist.project} {sdist.version}: {entry}" if entry else f"Release {sdist.version}"
        when = int(datetime.fromisoformat(sdist.upload_time.replace("Z", "+00:00")).timestamp())
        who = pygit2.Signature(f"{sdist.project} maintainers", f"{sdist.project}@pypi.invalid", when, 0)
        parent = [repo.create_commit("refs/heads/main", who, who, message + "\n", tree, parent)]
    repo.set_head("refs/heads/main")
    return repo


def build_commit_crawl(dest: Path, projects: list[tuple[str, int]] | None = None, cache: Path | None = None,
                       index_url: str = INDEX_URL, workers: int = 8) -> Path:
    """Write a commit crawl folder: one bundle per project and `git_repos.jsonl`. Returns the folder."""
    projects = projects or DEMO
    cache = cache or Path(settings.current().sdist_cache)
    cache.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    with cf.ThreadPoolExecutor(workers) as pool:
        picked = list(pool.map(lambda pw: pick(*pw, index_url=index_url), projects))
        archives = [list(pool.map(lambda s: fetch(s, cache), group)) for group in picked]
    lines = []
    for (project, _), sdists, paths in zip(projects, picked, archives, strict=True):
        bundle = dest / f"{project}.bundle"
        if not bundle.exists():
            with tempfile.TemporaryDirectory() as tmp:
                repo = build_history(Path(tmp) / f"{project}.git", list(zip(sdists, paths, strict=True)))
                subprocess.run(["git", "--git-dir", repo.path, "bundle", "create", str(bundle), "--all"],
                               check=True, capture_output=True)
        lines.append({"name": f"pypi/{project}", "git": bundle.name, "stars": None, "forks": None, "license": None,
                      "source": f"{index_url}/{project}/ releases {sdists[0].version}..{sdists[-1].version}"})
    (dest / COMMITS_MANIFEST).write_text("".join(json.dumps(x) + "\n" for x in lines))
    return dest
