"""Training-ready output (paper section 4): the benchmark n-gram index, a versioned asset in the model store,
and every corpus decontaminated against it, per partition of its source (core/decontam/). Thin wrappers:
the declared stages run, then their checks."""

import dagster as dg

from seedcoder_assets.core import pipeline
from seedcoder_assets.core.decontam.checks import drops_hold_their_ngram, no_benchmark_ngrams
from seedcoder_assets.core.decontam.index import build_index, planned_version
from seedcoder_assets.core.decontam.stage import DecontamParams, read_state
from seedcoder_assets.core.pipeline import BENCHMARK_NGRAMS, DECONTAMINATED, Key
from seedcoder_assets.defs.configs import BenchmarkIndexConfig, DecontamConfig
from seedcoder_assets.lib.dagster_utils import check_result, reconciles_check, run_declared, stats_metadata
from seedcoder_assets.lib.plots import bar_chart_markdown
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.resources.storage import StorageResource

INDEX_NAME = "benchmark_ngrams"  # its name in the model store


@dg.asset(**asset_kwargs(BENCHMARK_NGRAMS))
def benchmark_ngrams(context: dg.AssetExecutionContext, config: BenchmarkIndexConfig,
                     storage: StorageResource) -> dg.MaterializeResult:
    """The n-gram index of every configured benchmark, versioned by content: the same benchmarks and
    allowlist build it once, and a new version marks every decontaminated partition stale."""
    params = config.to_params()
    try:
        version = planned_version(params)
    except (FileNotFoundError, ValueError) as exc:
        raise dg.Failure(description=f"Benchmark index not built: {exc}") from exc
    models = storage.models()
    out, report, reused = models.train(INDEX_NAME, version, lambda tmp: build_index(params, tmp))
    models.publish(INDEX_NAME, version)
    per_bench = report["benchmarks"]
    allowed = {f"{b}: {rule}": c for b, info in per_bench.items() for rule, c in info["allowed"].items()}
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={"version": version, "reused": reused, "n": report["n"], "ngrams": report["ngrams"],
                  "blocking_ngrams": report["blocking"], "allowed_ngrams": dg.MetadataValue.json(report["allowed"]),
                  "benchmarks": dg.MetadataValue.json({b: {k: info[k] for k in ("version", "tasks", "ngrams",
                                                                                 "blocking", "allowed")}
                                                       for b, info in per_bench.items()}),
                  "licence_files": len(report["licence_files"]),
                  "ngrams_per_benchmark": bar_chart_markdown("blocking n-grams per benchmark",
                                                             {b: i["blocking"] for b, i in per_bench.items()},
                                                             "benchmark"),
                  **({"allowed_per_rule": bar_chart_markdown("allowed n-grams", allowed, "benchmark: rule")}
                     if allowed else {}),
                  "path": dg.MetadataValue.path(str(out))})


def decontaminated_asset(corpus: Key) -> dg.AssetsDefinition:
    asset = DECONTAMINATED[corpus]
    name = asset[-1]
    checks = [
        dg.AssetCheckSpec("lineage_reconciles", asset=key(asset),
                          description="every record of the corpus partition has one fate; the kept ones are the output"),
        dg.AssetCheckSpec("no_benchmark_ngrams", asset=key(asset),
                          description="no kept record holds a blocking n-gram of the current index (Python's re "
                                      "and the n-grams as strings, not the stage's hashes)"),
        dg.AssetCheckSpec("drops_hold_their_ngram", asset=key(asset),
                          description="every dropped record holds the blocking n-gram its lineage names")]

    @dg.asset(check_specs=checks, **asset_kwargs(asset))
    def _decontaminated(context: dg.AssetExecutionContext, config: DecontamConfig,
                        storage: StorageResource) -> dg.MaterializeResult:
        partition = context.partition_key
        models = storage.models()
        index = models.current(INDEX_NAME)
        if index is None:
            raise dg.Failure(description="No benchmark n-gram index yet: materialize training/benchmark_ngrams.")
        state = read_state(storage.lake_root, name, partition)
        prior = None
        if state and state["index_version"] != index.name and models.report(INDEX_NAME, state["index_version"]):
            prior = index.parent / state["index_version"]
        elif state and state["index_version"] == index.name:
            prior = index
        params = DecontamParams(index_path=str(index), prior_index_path=str(prior or ""), full=config.full)
        stats, dst = run_declared(context, storage, asset, params)
        src = storage.uri(corpus, partition)
        contaminated = {r.removeprefix("contaminated:"): c for r, c in stats.drops.items()}
        metadata = {**stats_metadata(stats, dst), "benchmarks_matched": dg.MetadataValue.json(contaminated)}
        for k in ("allowlist_spared_examples", "contaminated_tasks"):
            metadata[k] = dg.MetadataValue.json(stats.extra.get(k) or {})
        lineage_uri = storage.lineage_uri(name, partition)
        return dg.MaterializeResult(metadata=metadata, check_results=[
            reconciles_check(storage, asset, partition, dst, src),
            check_result("no_benchmark_ngrams", no_benchmark_ngrams(dst, str(index))),
            check_result("drops_hold_their_ngram", drops_hold_their_ngram(lineage_uri, src, str(index)))])

    return _decontaminated


decontaminated = [decontaminated_asset(c) for c in pipeline.CORPORA]
