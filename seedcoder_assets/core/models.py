"""The model store: trained models (scorers now, fastText classifiers next) by name and version, with a
CURRENT pointer per name, in a local folder or on S3. Steps on any machine publish, find and fetch through
it; a model is never visible under its version before it is complete."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seedcoder_assets.core import object_store

REPORT = "report.json"  # written last: a version folder without it is not a model


class ModelStore:
    def __init__(self, root: str, local_cache: str | Path) -> None:
        """`root`: a folder or s3:// prefix; `local_cache`: where models are trained and loaded on this
        machine (with a local root, the root itself)."""
        self.remote = root.rstrip("/") if object_store.is_s3(root) else None
        self.local = Path(local_cache) if self.remote or not root else Path(root)
        self.local.mkdir(parents=True, exist_ok=True)

    def _fetch(self, name: str, version: str) -> Path:
        local = self.local / name / version
        if self.remote and not (local / REPORT).exists():
            tmp = local.parent / f".{version}.fetch"
            shutil.rmtree(tmp, ignore_errors=True)
            object_store.copy_tree(f"{self.remote}/{name}/{version}", str(tmp))
            shutil.rmtree(local, ignore_errors=True)
            tmp.rename(local)
        return local

    def report(self, name: str, version: str) -> dict[str, Any] | None:
        """A stored model's report (fetching the model if only S3 has it); None if never stored."""
        local = self.local / name / version / REPORT
        if not local.exists():
            if not (self.remote and object_store.exists(f"{self.remote}/{name}/{version}/{REPORT}")):
                return None
            self._fetch(name, version)
        return json.loads(local.read_text())

    def train(self, name: str, version: str,
              build: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any], bool]:
        """(folder, report, reused) of the model `name/version`: the stored one if there is one, else
        `build(folder)` writes it and returns its report. A half-built model is never visible under its
        version."""
        known = self.report(name, version)
        out = self.local / name / version
        if known is not None:
            return out, known, True
        tmp = self.local / name / f".{version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        report = build(tmp)
        (tmp / REPORT).write_text(json.dumps(report))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        return out, report, False

    def publish(self, name: str, version: str) -> None:
        """Make `name/version` the current model for every step, on any machine."""
        if self.remote:  # steps run in other pods: the model and its pointer live on S3
            if not object_store.exists(f"{self.remote}/{name}/{version}/{REPORT}"):
                object_store.copy_tree(str(self.local / name / version), f"{self.remote}/{name}/{version}")
            object_store.write_text(f"{self.remote}/{name}/CURRENT", version)
        (self.local / name / "CURRENT").write_text(version)

    def current(self, name: str) -> Path | None:
        """Local folder of the current model (fetched from S3 if this machine lacks it), or None."""
        pointer = f"{self.remote}/{name}/CURRENT" if self.remote else str(self.local / name / "CURRENT")
        if not object_store.exists(pointer):
            return None
        return self._fetch(name, object_store.read_text(pointer).strip())
