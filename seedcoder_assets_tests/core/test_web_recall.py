"""The web recall model's core on real pages (Debian documentation: manuals and API references against
application help pages). The labels here are the sample's provenance (which package a page came from):
the pipeline's come from the oracle; what is tested is the training, the site split, the curve and the
threshold. (How well a model trained on a few sites ranks pages of sites it has never seen is a figure for
the benchmark, not a bound here: with this sample's 12 sites it ranges from chance to 0.96 average
precision depending on which sites are held out.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seedcoder_assets.core.stats import LineageWriter
from seedcoder_assets.core.web.pages import WebPageParams, extract_pages
from seedcoder_assets.core.web.recall import (
    MODEL_FILE,
    Example,
    RecallModel,
    RecallParams,
    choose_threshold,
    page_line,
    pr_curve,
    train_recall,
    validation_sites,
    version_of,
)
from seedcoder_assets.sample_web import PROVENANCE, build_dump


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> list[Example]:
    dump = build_dump(tmp_path_factory.mktemp("web") / "w1", "small")
    lake = tmp_path_factory.mktemp("lake")
    extract_pages("w1", str(dump), f"{lake}/pages", LineageWriter(str(lake), "web_pages", "w1", "r", "web"),
                  WebPageParams())
    kind = {}
    for line in (dump / PROVENANCE).read_text().splitlines():
        p = json.loads(line)
        kind[p["url"]] = p["kind"] == "programming"
    pages = pl.read_parquet(f"{lake}/pages/*.parquet")
    return [Example(r["id"], r["host"], page_line(r["title"], r["text"], 2000), kind[r["url"]])
            for r in pages.iter_rows(named=True)]


def test_the_recall_model_recalls_held_out_sites_at_its_target(examples: list[Example], tmp_path: Path) -> None:
    params = RecallParams(target_recall=0.95)
    report = train_recall(examples, params, tmp_path / "m1")
    held = set(report["validation_sites"])
    assert report["n_validation"] == sum(e.host in held for e in examples) > 50
    assert {e.code for e in examples if e.host in held} == {True, False}  # both kinds held out
    assert report["validation_recall"] >= 0.95
    assert 0 < report["average_precision"] <= 1 and report["validation_precision"] >= report["positive_share"] - 0.05
    model = RecallModel(tmp_path / "m1" / MODEL_FILE, report["threshold"], params.max_tokens)
    valid = [e for e in examples if e.host in held]
    scores = model.code_probability([e.line for e in valid])
    recalled = scores >= report["threshold"]
    truth = np.array([e.code for e in valid])
    assert recalled[truth].mean() == pytest.approx(report["validation_recall"])  # recomputed from the model
    # One thread and a seed: the same labels train the same model, with the same threshold.
    again = train_recall(examples, params, tmp_path / "m2")
    assert again["threshold"] == report["threshold"] and again["curve"] == report["curve"]
    assert version_of(examples, params) == version_of(list(reversed(examples)), params)
    assert version_of(examples, params) != version_of(examples, params.model_copy(update={"epoch": 3}))


def test_curve_threshold_and_site_split() -> None:
    scores = np.array([0.9, 0.8, 0.8, 0.4, 0.2])
    labels = np.array([1, 1, 0, 1, 0])
    curve = pr_curve(scores, labels)
    assert [p["threshold"] for p in curve] == [0.9, 0.8, 0.4, 0.2]
    assert curve[1] == {"threshold": 0.8, "precision": 2 / 3, "recall": 2 / 3}
    assert choose_threshold(curve, 0.99)["threshold"] == 0.4 and choose_threshold(curve, 0.5)["threshold"] == 0.8
    sites = [Example(f"{h}{i}", h, "x", h.startswith("code")) for h in ("code-a", "code-b", "help-a", "help-b")
             for i in range(3)]
    held = validation_sites(sites, 0.3, seed=0)
    assert any(h.startswith("code") for h in held) and any(h.startswith("help") for h in held)
    assert any(h.startswith("code") for h in {"code-a", "code-b"} - held)  # one left to train on
    assert validation_sites(sites, 0.3, seed=0) == held


def test_the_web_prompt_and_its_answer() -> None:
    from seedcoder_assets.core.web.prompt import (
        ANSWER_ONLY_REGEX,
        WEB_PROMPT_VERSION,
        WebJudgement,
        parse_web_answer,
        render_web_prompt,
    )

    prompt, truncated = render_web_prompt("https://docs.python.org/3/x.html", "sorted()", "line\n" * 10_000, 2_000)
    assert truncated and "URL: https://docs.python.org/3/x.html" in prompt and prompt.count("line") < 500
    assert WEB_PROMPT_VERSION.startswith("web1-")
    reply = ("Explains sorted() with examples. The format is Category: [[other]] ...\n"
             "Category: [[reference_api]]\nCode-related: [[yes]]\nRating: [[8]]")
    assert parse_web_answer(reply) == WebJudgement(True, "reference_api", 8)  # the last of each line wins
    for bad in ("Category: [[shop]]\nCode-related: [[no]]\nRating: [[3]]",  # not one of our categories
                "Category: [[other]]\nRating: [[3]]",  # a line missing
                "Category: [[other]]\nCode-related: [[no]]\nRating: [[11]]",
                "Category: [[other]]\nCode-related: [[no]]\nRating: [[2.5]]"):
        assert parse_web_answer(bad) is None
    import re

    assert re.fullmatch(ANSWER_ONLY_REGEX, "Category: [[qa_forum]]\nCode-related: [[no]]\nRating: [[10]]")
