"""The DuckDB catalog: views over every asset's Parquet and over the lineage of every stage."""


import dagster as dg

from seedcoder_assets.core.catalog import catalog
from seedcoder_assets.core.pipeline import LAKE_CATALOG
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.storage import StorageResource


@dg.asset(**asset_kwargs(LAKE_CATALOG),
          check_specs=[dg.AssetCheckSpec("lineage_chain_consistent", asset=key(LAKE_CATALOG))])
def lake_catalog(storage: StorageResource, catalog_db: CatalogResource) -> dg.MaterializeResult:
    """DuckDB views over the lake and the lineage table: 'why was this file dropped?' is one query."""
    with catalog_db.connect(storage.lake_root) as conn:
        balance = catalog.balance(conn)
        problems = catalog.chain_violations(conn)
        views = [r[0] for r in conn.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
    return dg.MaterializeResult(
        metadata={"views": dg.MetadataValue.json(sorted(views)),
                  "stage_balance": dg.MetadataValue.md(_balance_table(balance)),
                  "database": dg.MetadataValue.path(catalog_db.database)},
        check_results=[dg.AssetCheckResult(check_name="lineage_chain_consistent", passed=not problems,
                                           metadata={"problems": dg.MetadataValue.json(problems)})],
    )


def _balance_table(rows: list[dict]) -> str:
    head = "| crawl | stage | in | kept | dropped | multi-fate |\n|---|---|---|---|---|---|\n"
    return head + "\n".join(f"| {r['crawl']} | {r['stage']} | {r['rows_in']} | {r['kept']} | {r['dropped']} "
                            f"| {r['multi_fate']} |" for r in rows)
