"""The DuckDB catalog: views over every asset's Parquet and over the lineage of every stage."""


import dagster as dg

from seedcoder_assets.core.catalog import catalog
from seedcoder_assets.defs.dedup.assets import DEDUPED_REPOS, NEAR_DUP_CLUSTERS, REPO_LEVEL_FILES
from seedcoder_assets.defs.filters.assets import SYNTAX_CHECKED_FILES
from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.storage import StorageResource

LAKE_CATALOG = dg.AssetKey(["catalog", "lake_catalog"])


@dg.asset(key=LAKE_CATALOG, group_name="catalog", pool="duckdb",
          deps=[SYNTAX_CHECKED_FILES, REPO_LEVEL_FILES, DEDUPED_REPOS, NEAR_DUP_CLUSTERS],
          check_specs=[dg.AssetCheckSpec("lineage_chain_consistent", asset=LAKE_CATALOG)])
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
