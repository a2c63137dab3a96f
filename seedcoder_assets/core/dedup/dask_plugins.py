"""Dask worker plugins (imported only where a Dask session starts: engine.DaskEngine.session)."""

from __future__ import annotations

from distributed import WorkerPlugin

from seedcoder_assets.core import object_store


class S3Setup(WorkerPlugin):
    """Every worker, including one that starts or restarts later, resolves s3:// roots the way the step does."""

    def __init__(self, settings: object_store.S3Settings) -> None:
        self.settings = settings

    def setup(self, worker: object) -> None:
        object_store.configure_s3(self.settings)
