"""Label sample and label cache: reproducible, widenable, resumable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pytest

import seedcoder_assets.core.quality.labels as labels_mod
from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.quality.labels import LabelCache, label_sample, scaled_quotas, stratified_sample
from seedcoder_assets.core.quality.oracle import OracleReply, OracleRunStats, OracleSettings
from seedcoder_assets.core.schemas import FILE_SCHEMA


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Real code: the Python and C sources of installed PyPI wheels (dagster, pyarrow, numpy)."""
    import dagster
    import numpy

    roots = [Path(dagster.__file__).parent, Path(numpy.__file__).parent]
    rows = []
    for root in roots:
        for path in sorted(root.rglob("*.py"))[:400] + sorted(root.rglob("*.h"))[:60]:
            text = path.read_text(errors="replace")
            rows.append({"id": hashlib.sha1(str(path).encode()).hexdigest()[:16], "crawl": "t", "repo": root.name,
                         "path": str(path.relative_to(root)), "language": "Python" if path.suffix == ".py" else "C",
                         "size": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest(), "content": text})
    uri = str(tmp_path_factory.mktemp("files") / "part")
    with PartWriter(uri, FILE_SCHEMA) as out:
        out.write_rows(rows)
    return uri


def test_sample_is_seeded_stratified_and_widens(files: str) -> None:
    small = stratified_sample(files, {"Python": 50, "C": 10, "Rust": 5}, seed=7)
    assert dict(zip(*[small["language"].value_counts().field(f).to_pylist() for f in ("values", "counts")])) == \
        {"Python": 50, "C": 10}
    assert stratified_sample(files, {"Python": 50, "C": 10}, seed=7)["id"].to_pylist() == small["id"].to_pylist()
    wide = stratified_sample(files, {"Python": 80, "C": 10}, seed=7)
    assert set(small["id"].to_pylist()) <= set(wide["id"].to_pylist())
    other = stratified_sample(files, {"Python": 50, "C": 10}, seed=8)
    assert set(other["id"].to_pylist()) != set(small["id"].to_pylist())


def test_scaled_quotas() -> None:
    assert scaled_quotas({"Python": 26924, "C": 10020, "X": 0}, 0.001) == {"Python": 27, "C": 10}


def _reply(rating: int | None, status: str = "ok") -> OracleReply:
    return OracleReply(status, rating, f"Rating: [[{rating}]]" if rating is not None else "no", None, 1, 0.01)


def test_cache_prefers_answers_over_errors(tmp_path: Path) -> None:
    cache = LabelCache(str(tmp_path / "cache"), "judge/v1")
    base = {"crawl": "t", "language": "Python", "path": "p", "sha256": "s", "model": "judge/v1",
            "prompt_version": cache.prompt_version, "run_id": "r"}
    import datetime as dt

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cache.append([{**base, "id": "a", "status": "ok", "rating": 3, "answered_at": t0},
                  {**base, "id": "b", "status": "parse_failure", "raw": "hm", "answered_at": t0}])
    cache.append([{**base, "id": "a", "status": "error", "error": "HTTP 503", "answered_at": t0 + dt.timedelta(1)},
                  {**base, "id": "b", "status": "ok", "rating": 9, "answered_at": t0 + dt.timedelta(1)}])
    got = {r["id"]: (r["status"], r["rating"]) for r in cache.load().to_pylist()}
    assert got == {"a": ("ok", 3), "b": ("ok", 9)}
    assert LabelCache(str(tmp_path / "cache"), "judge/v2").load().num_rows == 0  # another model: nothing cached


def test_the_cache_key_covers_everything_that_changes_the_request() -> None:
    from seedcoder_assets.core.quality.labels import request_fingerprint

    base = OracleSettings("http://x/v1", "judge", structured_regex="Rating: \\[\\[(10|[0-9])\\]\\]")
    key = request_fingerprint(base, 24_000)
    assert key == request_fingerprint(OracleSettings("http://other/v1", "judge",
                                                     structured_regex=base.structured_regex), 24_000)
    changed = [request_fingerprint(base, 12_000),  # files cut elsewhere
               request_fingerprint(OracleSettings("http://x/v1", "judge", structured_regex=None), 24_000),
               request_fingerprint(OracleSettings("http://x/v1", "judge", structured_regex="(?s).*Rating: \\[\\[(10|[0-9])\\]\\]"),
                                   24_000),  # explanation mode
               request_fingerprint(OracleSettings("http://x/v1", "judge", structured_regex=base.structured_regex,
                                                  api="completions"), 24_000),
               request_fingerprint(OracleSettings("http://x/v1", "judge", structured_regex=base.structured_regex,
                                                  max_tokens=64), 24_000)]
    assert key not in changed and len(set(changed)) == len(changed)


def test_a_crash_keeps_what_was_answered(files: str, tmp_path: Path, monkeypatch) -> None:
    sample = stratified_sample(files, {"Python": 30}, seed=0)
    cache = LabelCache(str(tmp_path / "cache"), "judge")
    settings = OracleSettings("http://127.0.0.1:9/v1", "judge")

    def crashing_label(settings, prompts, on_reply, parse):
        for n, (key, _) in enumerate(prompts):
            if n == 12:
                raise KeyboardInterrupt  # the pod is killed mid-run
            on_reply(key, _reply(n % 11))
        return OracleRunStats()

    monkeypatch.setattr(labels_mod, "label", crashing_label)
    with pytest.raises(KeyboardInterrupt):
        label_sample(sample, files, settings, cache, "run1", 10_000)
    assert cache.load().num_rows == 12

    asked: list[str] = []

    def counting_label(settings, prompts, on_reply, parse):
        stats = OracleRunStats()
        for key, _ in prompts:
            asked.append(key)
            on_reply(key, _reply(5))
            stats.asked += 1
        return stats

    monkeypatch.setattr(labels_mod, "label", counting_label)
    table, run = label_sample(sample, files, settings, cache, "run2", 10_000)
    assert len(asked) == 18 and run.cached == 12 and run.asked == 18
    assert table.num_rows == 30 and set(table["status"].to_pylist()) == {"ok"}
    assert table.schema == labels_mod.LABEL_SCHEMA and pa.compute.all(pa.compute.is_valid(table["rating"])).as_py()
