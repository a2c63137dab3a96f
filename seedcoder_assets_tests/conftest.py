"""Shared fixtures: real crawls built from PyPI sdists (fetched once into a cache, never committed)."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from seedcoder_assets.sample_crawl import build_crawl

# Projects not in the small crawl: the genuinely new code of the second crawl.
NEW_PROJECTS = [("iniconfig", ("2.0.0",)), ("pluggy", ("1.5.0",))]


@pytest.fixture(scope="session")
def small_crawl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_crawl(tmp_path_factory.mktemp("landing") / "pypi-small", "small")


def _near_copy(text: str) -> str:
    """Change one word of a file with >= 100 words: a near duplicate (Jaccard well above 0.9)."""
    if len(re.findall(r"\w+", text)) < 100:
        return text
    return re.sub(r"\bself\b|\breturn\b|\bimport\b", "NEARCOPY", text, count=1)


def rewrite_sdist(src: Path, dst: Path, change: Callable[[str], str]) -> None:
    """A copy of an sdist whose .py files went through `change`."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for info in tin:
            data = tin.extractfile(info).read() if info.isfile() else None
            if data is not None and info.name.endswith(".py"):
                data = change(data.decode("utf-8")).encode("utf-8")
                info.size = len(data)
            tout.addfile(info, io.BytesIO(data) if data is not None else None)


def make_overlapping_crawl(first: Path, dest: Path) -> Path:
    """Crawl 2: exact copies of 3 repositories of crawl 1, near copies of 3 more, and new projects."""
    dest.mkdir(parents=True)
    entries = [json.loads(line) for line in (first / "repos.jsonl").read_text().splitlines()]
    by_name = {e["name"]: e for e in entries}
    exact = ["pypi/six-1.17.0", "pypi/idna-3.7", "pypi/toolz-0.12.1"]
    near = ["pypi/requests-2.32.3", "pypi/click-8.1.7", "pypi/packaging-24.1"]
    lines = []
    for name in exact:
        shutil.copy(first / by_name[name]["archive"], dest / by_name[name]["archive"])
        lines.append({**by_name[name], "name": name + "-mirror"})
    for name in near:
        out_name = "near-" + by_name[name]["archive"]
        rewrite_sdist(first / by_name[name]["archive"], dest / out_name, _near_copy)
        lines.append({"name": name + "-fork", "archive": out_name, "stars": 1})
    new = build_crawl(dest / "_new", NEW_PROJECTS)
    for e in (json.loads(x) for x in (new / "repos.jsonl").read_text().splitlines()):
        shutil.move(str(new / e["archive"]), dest / e["archive"])
        lines.append(e)
    shutil.rmtree(new)
    (dest / "repos.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return dest
