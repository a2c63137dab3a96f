"""Independent checks of commit samples with git itself (the CLI), not libgit2 that made them."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

DIFF_OPEN, DIFF_CLOSE = "<diff>\n", "</diff>\n"


def target_diff(text: str, prompt_chars: int) -> str:
    """The unified diffs of a sample's target, as the sample text carries them."""
    target = text[prompt_chars:]
    start = target.index(DIFF_OPEN) + len(DIFF_OPEN)
    return target[start: target.rindex(DIFF_CLOSE)]


def patch_applies(git_dir: str | Path, parent: str | None, diff: str) -> str | None:
    """None if `diff` applies cleanly to commit `parent`'s tree (None: the empty tree), else git's
    complaint. Reads the tree into a throwaway index (`git read-tree`) and runs `git apply --cached
    --check` there: nothing is checked out."""
    if not diff.strip():
        return None  # only binary files changed: nothing textual to apply
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_DIR": str(git_dir), "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        read = subprocess.run(["git", "read-tree", parent] if parent else ["git", "read-tree", "--empty"], env=env,
                              capture_output=True, text=True)
        if read.returncode:
            return f"read-tree: {read.stderr.strip()[:300]}"
        out = subprocess.run(["git", "apply", "--cached", "--check", "-"], input=diff.encode(), env=env,
                             capture_output=True)
        return None if out.returncode == 0 else out.stderr.decode(errors="replace").strip()[:500] or "rejected"
