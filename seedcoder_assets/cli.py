"""`seedcoder`: build sample crawls, register crawls, run the pipeline, and ask the lineage catalog."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _home() -> Path:
    return Path(os.environ.get("SEEDCODER_HOME", "data")).resolve()


def _instance():
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        sys.exit("DAGSTER_HOME is not set: point it at the Dagster instance folder (see README)")
    return dg.DagsterInstance.get()


def cmd_sample_crawl(args: argparse.Namespace) -> None:
    from seedcoder_assets.sample_crawl import build_crawl

    landing = Path(args.landing or os.environ.get("SEEDCODER_LANDING_ROOT", _home() / "landing"))
    dest = build_crawl(landing / args.name, args.which)
    print(f"crawl {args.name} ({args.which}) written to {dest}")


def cmd_register(args: argparse.Namespace) -> None:
    from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME

    instance = _instance()
    existing = set(instance.get_dynamic_partitions(CRAWL_PARTITIONS_NAME))
    new = [c for c in args.crawls if c not in existing]
    if new:
        instance.add_dynamic_partitions(CRAWL_PARTITIONS_NAME, new)
    for c in args.crawls:
        print(f"{c}: {'registered' if c in new else 'already registered'}")


def cmd_materialize(args: argparse.Namespace) -> None:
    from seedcoder_assets.definitions import defs

    d = defs()
    instance = _instance()
    ok = True
    for crawl in args.crawls:
        result = d.resolve_job_def("github_files_job").execute_in_process(
            instance=instance, partition_key=crawl, raise_on_error=False)
        ok &= _report(f"github_files_job[{crawl}]", result)
    result = d.resolve_job_def("catalog_job").execute_in_process(instance=instance, raise_on_error=False)
    ok &= _report("catalog_job", result)
    if not ok:
        sys.exit(1)


def _report(name: str, result) -> bool:
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    failed = [e.event_specific_data.check_name + " on " + e.event_specific_data.asset_key.to_user_string()
              for e in checks if not e.event_specific_data.passed]
    print(f"{name}: {'success' if result.success else 'FAILED'}; {len(checks)} asset checks, {len(failed)} failed")
    for f in failed:
        print(f"  check failed: {f}")
    return result.success and not failed


def _catalog():
    from seedcoder_assets.core.catalog import catalog

    home = _home()
    lake = os.environ.get("SEEDCODER_LAKE_ROOT", str(home / "lake"))
    return catalog, catalog.open_catalog(os.environ.get("SEEDCODER_CATALOG", str(home / "catalog.duckdb")), lake)


def cmd_why(args: argparse.Namespace) -> None:
    catalog, conn = _catalog()
    rows = catalog.why(conn, args.needle)
    if not rows:
        sys.exit(f"no record matches {args.needle!r}")
    for r in rows:
        fate = r["decision"] + (f" ({r['reason']})" if r["reason"] else "")
        extra = f" survivor={r['survivor']}" if r["survivor"] and r["survivor"] != r["id"] else ""
        print(f"{r['crawl']} {r['id']} {r['stage']:<12} {fate}{extra}  {r['detail'] or ''}")


def cmd_where(args: argparse.Namespace) -> None:
    catalog, conn = _catalog()
    print(json.dumps(catalog.where_from(conn, args.id)))


def cmd_balance(args: argparse.Namespace) -> None:
    catalog, conn = _catalog()
    for r in catalog.balance(conn):
        print(r)
    problems = catalog.chain_violations(conn)
    for p in problems:
        print("PROBLEM:", p)
    if problems:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="seedcoder", description=__doc__)
    sub = p.add_subparsers(required=True)
    s = sub.add_parser("sample-crawl", help="build a real crawl from PyPI sdists (fetched now, never committed)")
    s.add_argument("--which", choices=["small", "large"], default="small")
    s.add_argument("--name", default="pypi-small")
    s.add_argument("--landing", help="landing root (default $SEEDCODER_LANDING_ROOT or $SEEDCODER_HOME/landing)")
    s.set_defaults(fn=cmd_sample_crawl)
    s = sub.add_parser("register-crawl", help="add crawls as partitions of the `crawl` dimension")
    s.add_argument("crawls", nargs="+")
    s.set_defaults(fn=cmd_register)
    s = sub.add_parser("materialize", help="run the GitHub branch for crawls, then refresh the catalog")
    s.add_argument("crawls", nargs="+")
    s.set_defaults(fn=cmd_materialize)
    s = sub.add_parser("why", help="every stage's decision for a file id or a 'repo/path' substring")
    s.add_argument("needle")
    s.set_defaults(fn=cmd_why)
    s = sub.add_parser("where", help="the crawl, repository and path a file id came from")
    s.add_argument("id")
    s.set_defaults(fn=cmd_where)
    s = sub.add_parser("balance", help="kept/dropped per crawl and stage; exits 1 if the chain does not add up")
    s.set_defaults(fn=cmd_balance)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
