"""The DuckDB catalog: SQL views over the Parquet lake and the lineage table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from pydantic import Field

from seedcoder_assets.core.catalog import catalog


class CatalogResource(dg.ConfigurableResource):
    """A DuckDB database file holding views (no data), so it is cheap to rebuild anywhere."""

    database: str = Field(description="Path of the DuckDB catalog file")

    @contextmanager
    def connect(self, lake_root: str) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = catalog.open_catalog(self.database, lake_root)
        try:
            yield conn
        finally:
            conn.close()
