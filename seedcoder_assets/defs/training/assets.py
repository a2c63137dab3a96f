"""Training-ready output: the benchmark n-gram index, a versioned asset in the model store, every corpus
decontaminated against it per partition of its source (paper section 4, core/decontam/), and the two phase
mixtures as token shards (paper 2.1, 2.3, 2.2.6; core/training/). Thin wrappers: the core runs, then the
checks."""

from pathlib import Path

import dagster as dg

from seedcoder_assets.core import pipeline
from seedcoder_assets.core.decontam.checks import drops_hold_their_ngram, no_benchmark_ngrams
from seedcoder_assets.core.decontam.index import build_index, planned_version
from seedcoder_assets.core.decontam.stage import DecontamParams, read_state
from seedcoder_assets.core.longctx.corpus import tokenizer_file
from seedcoder_assets.core.object_store import is_s3
from seedcoder_assets.core.parquet_io import is_complete
from seedcoder_assets.core.pipeline import BENCHMARK_NGRAMS, DECONTAMINATED, PHASE_MIXTURE, Key
from seedcoder_assets.core.training.checks import (
    every_record_once,
    fim_reassembles,
    mixture_within_tolerance,
    tokens_match_shards,
)
from seedcoder_assets.core.training.mixture import PHASES, Encoder, PhaseInput, build_phase
from seedcoder_assets.defs.configs import BenchmarkIndexConfig, DecontamConfig, PhaseConfig
from seedcoder_assets.lib.dagster_utils import check_result, reconciles_check, run_declared, stats_metadata
from seedcoder_assets.lib.plots import bar_chart_markdown, mixture_markdown
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.partitions import BY_SOURCE
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


PHASE_PARTITIONS = dg.StaticPartitionsDefinition(sorted(PHASES))


def phase_root(storage: StorageResource, config: PhaseConfig, phase: str) -> Path:
    """Where a phase's shards live: a local or mounted folder (Megatron memory-maps them)."""
    if config.output_root:
        return Path(config.output_root) / f"phase={phase}"
    if is_s3(storage.lake_root):
        raise dg.Failure(description="The lake is on S3: set the phase mixture's output_root to a local or mounted "
                                     "folder (a shared volume the trainers read).")
    return Path(storage.lake_root) / PHASE_MIXTURE[0] / PHASE_MIXTURE[1] / f"phase={phase}"


def phase_inputs(context: dg.AssetExecutionContext, storage: StorageResource, corpora: set[str]) -> list[PhaseInput]:
    """Every decontaminated (corpus, partition) of the phase's corpora that is complete, in registration order."""
    out = []
    for corpus in pipeline.CORPORA:
        if corpus[-1] not in corpora:
            continue
        source = pipeline.stage(corpus).source
        for partition in context.instance.get_dynamic_partitions(BY_SOURCE[source].name):
            uri = storage.uri(DECONTAMINATED[corpus], partition)
            if is_complete(uri):
                out.append(PhaseInput(corpus[-1], partition, uri))
    return out


_MIX_CHECKS = [
    ("tokens_match_shards", "per source, the manifest's tokens equal the shards' (.idx parsed here, .bin sizes, "
                            "Parquet rows); in the new shards the end-of-document id ends each document only, the "
                            "sentinels' ids are in FIM documents only, and sampled documents tokenized again are "
                            "the ids in the .bin"),
    ("every_record_once", "each new (corpus, partition) holds every decontaminated record once and nothing else "
                          "(ids anti-joined both ways); a record without a document has no text or holds a "
                          "sentinel, as many as the manifest counts; the FIM share is within 4 standard "
                          "deviations of the phase's rate"),
    ("fim_reassembles", "documents from every shard written this run are their decontaminated records: a FIM one "
                        "once its parts are put back in order"),
    ("mixture_within_tolerance", "the blend a trainer reads draws each source's configured share within the "
                                 "tolerance, repeating none past its limit (tokens from the .idx files)")]


@dg.asset(**asset_kwargs(PHASE_MIXTURE, partitions_def=PHASE_PARTITIONS,
                         deps=[dg.AssetDep(key(k), partition_mapping=dg.AllPartitionMapping())
                               for k in DECONTAMINATED.values()]),
          check_specs=[dg.AssetCheckSpec(n, asset=key(PHASE_MIXTURE), description=d) for n, d in _MIX_CHECKS])
def phase_mixture(context: dg.AssetExecutionContext, config: PhaseConfig,
                  storage: StorageResource) -> dg.MaterializeResult:
    phase = context.partition_key
    params = config.to_params(phase)
    tokenizer = tokenizer_file(params.tokenizer)
    inputs = phase_inputs(context, storage, {s.corpus for s in params.sources})
    if not inputs:
        raise dg.Failure(description=f"No decontaminated corpus of {sorted(s.corpus for s in params.sources)} yet: "
                                     "run `seedcoder materialize-decontam` first.")
    root = phase_root(storage, config, phase)
    out = build_phase(phase, params, inputs, root, Encoder(tokenizer, params.fim.sentinels, params.eos_token),
                      log=context.log.info)
    blend, entries = out["blend"], out["entries"]
    per_source: dict[str, dict[str, int]] = {}
    for e in (entries[k] for k in out["active"]):
        s = per_source.setdefault(e["corpus"], {"documents": 0, "tokens": 0, "fim_documents": 0, "shards": 0,
                                                "dropped": {}, "escaped": 0})
        s["documents"] += e["documents"]
        s["tokens"] += e["tokens"]
        s["fim_documents"] += e["fim_documents"]
        s["shards"] += len(e["shards"])
        for reason, n in e["dropped"].items():
            s["dropped"][reason] = s["dropped"].get(reason, 0) + n
        s["escaped"] += e["escaped"]
    sources = {f"{i.corpus}/{i.partition}": i.uri for i in inputs}
    checked = out["written"]  # what this run wrote is checked document by document; every shard structurally
    metadata = {
        "phase": phase, "written": dg.MetadataValue.json(out["written"]), "kept": len(out["kept"]),
        "shards": sum(s["shards"] for s in per_source.values()),
        "documents": sum(s["documents"] for s in per_source.values()), "total_tokens": blend["total_tokens"],
        "per_source": dg.MetadataValue.json(per_source),
        "blend": dg.MetadataValue.json({k: blend[k] for k in ("configured_share", "realised_share", "epochs",
                                                               "tokens", "available_tokens", "missing_sources")}),
        "mixture": mixture_markdown(f"{phase}: share of tokens per source", blend["configured_share"],
                                    blend["realised_share"], blend["epochs"]),
        "tokens_per_source": bar_chart_markdown(f"{phase}: tokens on disk per source",
                                                {c: s["tokens"] for c, s in per_source.items()}, "source"),
        "fim": dg.MetadataValue.json({**params.fim.model_dump(), "documents": sum(s["fim_documents"]
                                                                                 for s in per_source.values())}),
        "left_out": dg.MetadataValue.json(blend["left_out"]), "tokenizer": tokenizer, "vocab_size": out["vocab_size"], "special_ids": dg.MetadataValue.json(out["special_ids"]),
        "data_path": dg.MetadataValue.path(str(root / "data_path.txt")), "path": dg.MetadataValue.path(str(root))}
    return dg.MaterializeResult(metadata=metadata, check_results=[
        check_result("tokens_match_shards", tokens_match_shards(root, tokenizer, checked)),
        check_result("every_record_once", every_record_once(root, sources, checked)),
        check_result("fim_reassembles", fim_reassembles(root, sources, checked)),
        check_result("mixture_within_tolerance", mixture_within_tolerance(
            root, {s.corpus: s.weight for s in params.sources}, {s.corpus: s.max_epochs for s in params.sources},
            params.tolerance))])
