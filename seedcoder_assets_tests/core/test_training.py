"""Training-ready output: FIM (deterministic, SPM and PSM, sentinels never in data), Megatron shards read back by
Megatron's own reader, and a phase built from real files of the small crawl: incremental shards, the blend,
and each check fed output that breaks it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seedcoder_assets.core import paths
from seedcoder_assets.core.ingest.archives import ExtractParams
from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.training import checks
from seedcoder_assets.core.training.fim import ESCAPE, FimParams, fim_document
from seedcoder_assets.core.training.mixture import Encoder, PhaseInput, PhaseParams, SourceMix, build_phase
from seedcoder_assets.core.training.shards import ShardWriter
from seedcoder_assets_tests.core.test_ingest import _ingest

SPM = FimParams(rate=1.0)


def test_fim_is_deterministic_per_record_and_its_parts_are_the_source() -> None:
    text = "def área(r):\n    return 3.14159 * r * r  # π r²\n"
    a, b = fim_document(text, "repo/x.py", "regular", SPM), fim_document(text, "repo/x.py", "regular", SPM)
    assert a == b and a.cuts is not None
    i, j = a.cuts
    assert a.text == f"<[fim-suffix]>{text[j:]}<[fim-prefix]>{text[:i]}<[fim-middle]>{text[i:j]}"
    psm = fim_document(text, "repo/x.py", "regular", FimParams(rate=1.0, mode="psm"))
    assert psm.text == f"<[fim-prefix]>{text[:i]}<[fim-suffix]>{text[j:]}<[fim-middle]>{text[i:j]}"
    assert checks._reassemble(a.text, "spm", {"prefix": "<[fim-prefix]>", "suffix": "<[fim-suffix]>",
                                              "middle": "<[fim-middle]>"}) == text
    # the rate, per phase: a binomial count over 4,000 ids, and another phase cuts elsewhere
    regular = [fim_document(text, f"id{n}", "regular", FimParams(rate=0.5)).cuts is not None for n in range(4000)]
    continued = [fim_document(text, f"id{n}", "continued", FimParams(rate=0.1)).cuts is not None for n in range(4000)]
    assert 1850 < sum(regular) < 2150 and 320 < sum(continued) < 480
    cuts = {fim_document(text, f"id{n}", "regular", SPM).cuts for n in range(200)}
    assert len(cuts) > 50  # character-level split points, all over the text
    # a text holding a sentinel: dropped, or escaped so that the tokenizer never meets a real one
    held = "x = '<[fim-middle]>'\n"
    assert fim_document(held, "s", "regular", SPM) is None
    escaped = fim_document(held, "s", "regular", FimParams(rate=0.0, on_sentinel="escape"))
    assert escaped.escaped == 1 and escaped.text == held.replace("<[fim", "<" + ESCAPE + "[fim")


def test_shards_are_megatron_indexed_datasets_with_int32_ids(tmp_path: Path) -> None:
    megatron = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    docs = [np.array([1, 2, 3, 65_535, 65_536, 2**31 - 1], np.int32), np.array([7], np.int32),
            np.arange(100_000, 101_000, dtype=np.int32)]
    writer = ShardWriter(tmp_path / "c" / "p" / "part-00000")
    writer.write(docs, {"corpus": ["c"] * 3, "partition": ["p"] * 3, "source_id": ["a", "b", "c"],
                        "fim": [None] * 3, "fim_start": [None] * 3, "fim_end": [None] * 3, "escaped": [0] * 3,
                        "text": ["a", "b", "c"]})
    assert writer.close()["tokens"] == 1007
    ds = megatron.IndexedDataset(str(tmp_path / "c" / "p" / "part-00000"))
    assert len(ds) == 3 and ds.index.dtype == np.int32
    assert all(np.array_equal(ds[i], d) for i, d in enumerate(docs))
    assert np.array_equal(checks.parse_idx(tmp_path / "c" / "p" / "part-00000.idx"), [6, 1, 1000])
    # megatron-core's own writer, fed the same documents, writes the same bytes
    import torch

    builder = megatron.IndexedDatasetBuilder(str(tmp_path / "theirs.bin"), dtype=np.int32)
    for d in docs:
        builder.add_item(torch.from_numpy(d))
        builder.end_document()
    builder.finalize(str(tmp_path / "theirs.idx"))
    for ext in ("bin", "idx"):
        assert (tmp_path / f"theirs.{ext}").read_bytes() == (tmp_path / "c" / "p" / f"part-00000.{ext}").read_bytes()
    assert not list((tmp_path / "c" / "p").glob(".*"))  # nothing temporary left


def _tokenizer(texts: list[str], folder: Path) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2000, special_tokens=["<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return str(folder / "tokenizer.json")


@pytest.fixture(scope="module")
def corpora(small_crawl: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("training")
    _, files, _ = _ingest(small_crawl, home / "ingest", ExtractParams())
    code = files.filter(pl.col("language").is_in(["Python", "C", "JavaScript"])).sort("id")
    prose = files.filter(pl.col("path").str.ends_with(".rst") | pl.col("path").str.ends_with(".md")).sort("id")
    repos = sorted(set(code["repo"]))
    lake = home / "lake"

    def write(key: str, partition: str, rows: pl.DataFrame) -> PhaseInput:
        uri = paths.partition_uri(str(lake), ["training", f"decontaminated_{key}"], partition)
        with PartWriter(uri, FILE_SCHEMA) as out:
            out.write_table(rows.select(FILE_SCHEMA.names).to_arrow().cast(FILE_SCHEMA))
        return PhaseInput(key, partition, uri)

    inputs = {"c1": write("quality_files", "c1", code.filter(pl.col("repo").is_in(repos[::2]))),
              "c2": write("quality_files", "c2", code.filter(pl.col("repo").is_in(repos[1::2]))),
              "d1": write("web_corpus", "d1", prose)}
    tokenizer = _tokenizer(code["content"].head(300).to_list(), home / "tok")
    return {"home": home, "inputs": inputs, "tokenizer": tokenizer}


PARAMS = PhaseParams(sources=[SourceMix(corpus="quality_files", weight=0.8),
                              SourceMix(corpus="web_corpus", weight=0.2, max_epochs=3.0)],
                     fim=FimParams(rate=0.5), max_shard_tokens=200_000)


def _checks(root: Path, inputs: dict, tokenizer: str, params: PhaseParams = PARAMS) -> dict:
    sources = {f"{i.corpus}/{i.partition}": i.uri for i in inputs.values()}
    return {"tokens": checks.tokens_match_shards(root, tokenizer),
            "fim": checks.fim_reassembles(root, sources),
            "once": checks.every_record_once(root, sources),
            "mix": checks.mixture_within_tolerance(root, {s.corpus: s.weight for s in params.sources},
                                                   {s.corpus: s.max_epochs for s in params.sources},
                                                   params.tolerance)}


def test_a_phase_from_real_files_adds_shards_for_a_new_crawl_and_its_checks_can_fail(corpora, tmp_path: Path) -> None:
    inputs, tokenizer = corpora["inputs"], corpora["tokenizer"]
    encoder = Encoder(tokenizer, FimParams().sentinels)
    root = tmp_path / "regular"
    first = build_phase("regular", PARAMS, [inputs["c1"], inputs["d1"]], root, encoder, log=lambda _: None)
    assert sorted(first["written"]) == ["quality_files/c1", "web_corpus/d1"]
    assert len(first["entries"]["quality_files/c1"]["shards"]) > 1  # rolled over at max_shard_tokens
    result = _checks(root, inputs, tokenizer)
    assert all(c.passed for c in result.values()), {k: c.metadata for k, c in result.items()}
    assert 0.4 < result["fim"].metadata["fim_share"] < 0.6
    # fed the wrong partition as a source: its records are not the documents
    swapped = {"quality_files/c1": inputs["c2"].uri, "web_corpus/d1": inputs["d1"].uri}
    assert not checks.every_record_once(root, swapped).passed
    assert first["blend"]["realised_share"]["quality_files"] == pytest.approx(0.8)
    old = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (root / "quality_files" / "c1").glob("part-*")}
    # a new crawl: its shards are added, the first crawl's are not touched
    second = build_phase("regular", PARAMS, [inputs["c1"], inputs["c2"], inputs["d1"]], root, encoder,
                         log=lambda _: None)
    assert second["written"] == ["quality_files/c2"] and sorted(second["kept"]) == ["quality_files/c1",
                                                                                     "web_corpus/d1"]
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (root / "quality_files" / "c1").glob("part-*")} == old
    result = _checks(root, inputs, tokenizer)
    assert all(c.passed for c in result.values()), {k: c.metadata for k, c in result.items()}
    blend = json.loads((root / "blend.json").read_text())
    assert any("/c2/" in str(p) for p in blend["data_path"][1::2])
    # re-run: nothing written, the same bytes
    again = build_phase("regular", PARAMS, [inputs["c1"], inputs["c2"], inputs["d1"]], root, encoder,
                        log=lambda _: None)
    assert again["written"] == [] and (root / "blend.json").read_text() == json.dumps(blend, indent=1, sort_keys=True)
    # fed a target beyond the repetition limit of the code files: the mixture misses its shares and says so
    short = PARAMS.model_copy(update={"target_tokens": 2 * blend["available_tokens"]["quality_files"]})
    build_phase("regular", short, [inputs["c1"], inputs["c2"], inputs["d1"]], root, encoder, log=lambda _: None)
    missed = _checks(root, inputs, tokenizer, short)["mix"]
    assert not missed.passed and missed.metadata["difference"]["quality_files"] < -0.02
    # fed a corrupted shard: one token of a sampled document changed
    prefix = root / "quality_files" / "c2" / "part-00000"
    with open(f"{prefix}.bin", "r+b") as fh:
        fh.seek(4)
        fh.write(np.array([1], np.int32).tobytes() if np.fromfile(f"{prefix}.bin", np.int32, 2)[1] != 1
                 else np.array([2], np.int32).tobytes())
    assert not checks.tokens_match_shards(root, tokenizer).passed
    # fed a FIM document whose middle lost a character
    text = pq.read_table(f"{prefix}.parquet")
    fims = [i for i, f in enumerate(text["fim"].to_pylist()) if f]
    broken = text["text"].to_pylist()
    broken[fims[0]] = broken[fims[0]][:-1]
    pq.write_table(text.set_column(text.schema.get_field_index("text"), "text", pa.array(broken, pa.large_string())),
                   f"{prefix}.parquet")
    assert not checks.fim_reassembles(root, {f"{i.corpus}/{i.partition}": i.uri for i in inputs.values()}).passed


def test_a_sentinel_in_the_data_is_dropped_and_counted(corpora, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    uri = paths.partition_uri(str(lake), ["training", "decontaminated_quality_files"], "s1")
    texts = ["print('<[fim-prefix]>')", "x = 1\n", "y = 2\n", "<s>struck</s> <|endoftext|>\n", "", None]
    rows = [{"id": f"f{i}", "crawl": "s1", "repo": "r", "path": f"{i}.py", "language": "Python", "size": 10,
             "sha256": "", "content": c} for i, c in enumerate(texts)]
    with PartWriter(uri, FILE_SCHEMA) as out:
        out.write_table(pa.Table.from_pylist(rows, schema=FILE_SCHEMA))
    encoder = Encoder(corpora["tokenizer"], FimParams().sentinels)
    out = build_phase("regular", PARAMS, [PhaseInput("quality_files", "s1", uri)], tmp_path / "p", encoder,
                      log=lambda _: None)
    entry = out["entries"]["quality_files/s1"]
    assert entry["dropped"] == {"fim_sentinel_in_text": 1, "empty_text": 2} and entry["documents"] == 3
    assert entry["dropped_ids"] == {"fim_sentinel_in_text": ["f0"], "empty_text": ["f4", "f5"]}
    # `</s>` in a text is text: the end-of-document id closes each document and occurs nowhere else
    ids = np.fromfile(tmp_path / "p" / "quality_files" / "s1" / "part-00000.bin", np.int32)
    assert (ids == encoder.eos_id).sum() == 3 and ids[-1] == encoder.eos_id
    assert checks.tokens_match_shards(tmp_path / "p", corpora["tokenizer"]).passed
    once = checks.every_record_once(tmp_path / "p", {"quality_files/s1": uri})
    assert once.passed and once.metadata["records"]["quality_files/s1"] == {
        "documents": 3, "foreign": 0, "no_text": 2, "holding_a_sentinel": 1, "unexplained": 0}
    assert out["blend"]["missing_sources"] == ["web_corpus"]
    # fed a document that names no record of the partition (one record lost, the counts unchanged)
    shard = tmp_path / "p" / "quality_files" / "s1" / "part-00000.parquet"
    good = pq.read_table(shard)
    ids = good["source_id"].to_pylist()
    pq.write_table(good.set_column(good.schema.get_field_index("source_id"), "source_id",
                                   pa.array(["zzz"] + ids[1:], good.schema.field("source_id").type)), shard)
    lost = checks.every_record_once(tmp_path / "p", {"quality_files/s1": uri})
    assert not lost.passed and lost.metadata["records"]["quality_files/s1"]["foreign"] == 1
    assert lost.metadata["records"]["quality_files/s1"]["unexplained"] == 1
    # fed a manifest whose drop counts are not what the records without a document hold
    pq.write_table(good, shard)
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    manifest["entries"]["quality_files/s1"]["dropped"] = {"fim_sentinel_in_text": 0, "empty_text": 3}
    (tmp_path / "p" / "manifest.json").write_text(json.dumps(manifest))
    assert not checks.every_record_once(tmp_path / "p", {"quality_files/s1": uri}).passed
    # fed a shard the manifest lists but the disk lacks: a failed check, not an exception
    shard.unlink()
    assert not checks.every_record_once(tmp_path / "p", {"quality_files/s1": uri}).passed
    assert not checks.tokens_match_shards(tmp_path / "p", corpora["tokenizer"]).passed
    assert not checks.fim_reassembles(tmp_path / "p", {"quality_files/s1": uri}).passed
    (tmp_path / "p" / "quality_files" / "s1" / "part-00000.idx").unlink()  # the blend names what is gone
    mix = checks.mixture_within_tolerance(tmp_path / "p", {"quality_files": 1.0}, {"quality_files": 1.0}, 0.01)
    assert not mix.passed and mix.metadata["unreadable_shards"]
    assert encoder.special["<[fim-prefix]>"] >= 2000 and os.path.exists(tmp_path / "p" / "data_path.txt")
