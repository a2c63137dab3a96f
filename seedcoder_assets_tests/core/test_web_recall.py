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

from seedcoder_assets.core.fasttext_buckets import FASTTEXT_BUCKETS, MIN_BUCKETS, ngram_buckets
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
    split_sites,
    train_recall,
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
    return [Example(r["id"], r["host"], page_line(r["title"], r["text"], 2000), kind[r["url"]], r["code_tag"])
            for r in pages.iter_rows(named=True)]


def test_the_threshold_is_fitted_on_some_held_out_sites_and_checked_on_others(examples: list[Example],
                                                                              tmp_path: Path) -> None:
    params = RecallParams(target_recall=0.95)
    report = train_recall(examples, params, tmp_path / "m1")
    train, fit, check = (set(report[k]) for k in ("training_sites", "fitting_sites", "checking_sites"))
    assert not (train & fit or train & check or fit & check) and fit and check
    assert {e.code for e in examples if e.host in check} == {True, False}  # both kinds checked
    assert report["fit_recall"] >= 0.95  # the target is reached where the threshold was fitted ...
    # ... and measured elsewhere: on the pages without code tags (the model's population) where those hold
    # code-related pages, else (a programming site whose every page has code tags) on all of them.
    untagged = [e for e in examples if e.host in check and not e.tagged]
    checked = untagged if any(e.code for e in untagged) else [e for e in examples if e.host in check]
    assert report["n_check"] == len(checked) > 50 and report["check_untagged_only"] == (checked is untagged)
    model = RecallModel(tmp_path / "m1" / MODEL_FILE, report["threshold"], params.max_tokens)
    scores = model.code_probability([e.line for e in checked])
    truth = np.array([e.code for e in checked])
    recalled = scores >= report["threshold"]
    assert recalled[truth].mean() == pytest.approx(report["check_recall"])  # recomputed from the stored model
    assert truth[recalled].mean() == pytest.approx(report["check_precision"])
    assert 0 < report["check_average_precision"] <= 1
    # The n-gram table is sized to the training pages, not fastText's fixed 2M rows (520 MB a model).
    rows = report["bucket"] + len(model.model.get_words())
    assert report["bucket"] < 2_000_000 and model.model.get_input_matrix().shape == (rows, params.dim)
    # One thread and a seed: the same labels train the same model, with the same threshold.
    again = train_recall(examples, params, tmp_path / "m2")
    assert again["threshold"] == report["threshold"] and again["curve"] == report["curve"]
    assert version_of(examples, params) == version_of(list(reversed(examples)), params)
    assert version_of(examples, params) != version_of(examples, params.model_copy(update={"epoch": 3}))
    changed = [Example(e.id, e.host, e.line + " x", e.code, e.tagged) if i == 0 else e for i, e in enumerate(examples)]
    assert version_of(changed, params) != version_of(examples, params)  # a page's text changed: a new model


def test_curve_threshold_and_site_split() -> None:
    scores = np.array([0.9, 0.8, 0.8, 0.4, 0.2])
    labels = np.array([1, 1, 0, 1, 0])
    curve = pr_curve(scores, labels)
    assert [p["threshold"] for p in curve] == [0.9, 0.8, 0.4, 0.2]
    assert curve[1] == {"threshold": 0.8, "precision": 2 / 3, "recall": 2 / 3}
    assert choose_threshold(curve, 0.99)["threshold"] == 0.4 and choose_threshold(curve, 0.5)["threshold"] == 0.8
    sites = [Example(f"{h}{i}", h, "x", h.startswith("code") and i > 0) for h in
             ("code-a", "code-b", "code-c", "help-a", "help-b", "help-c", "help-d") for i in range(3)]
    train, fit, check = split_sites(sites, RecallParams())
    for part in (train, fit, check):  # each part has a site of each kind (by the label most pages carry)
        assert any(h.startswith("code") for h in part) and any(h.startswith("help") for h in part)
    assert train | fit | check == {e.host for e in sites} and not (train & fit or fit & check or train & check)
    assert split_sites(list(reversed(sites)), RecallParams()) == (train, fit, check)  # seeded, not by order
    two = [e for e in sites if e.host in ("code-a", "code-b", "help-a", "help-b")]
    train, fit, check = split_sites(two, RecallParams())
    assert len(train) == 2 and len(fit) == 0 and len(check) == 2  # too few sites to fit and check apart


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


def test_ngram_buckets_follow_the_distinct_ngrams_up_to_fasttexts_default(tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_text("__label__a x y z\n__label__b x y\n")  # bigrams: (x y), (y z); labels are not words
    assert ngram_buckets(small, 2) == MIN_BUCKETS and ngram_buckets(small, 1) == MIN_BUCKETS
    words = tmp_path / "words.txt"
    words.write_text("".join(f"__label__a w{i} w{i + 1} w{i + 2}\n" for i in range(0, 3000, 3)))
    # Per line: 2 bigrams and 1 trigram, all distinct; the label never joins an n-gram.
    assert ngram_buckets(words, 2) == 4 * 2000 and ngram_buckets(words, 3) == 4 * 3000
    assert ngram_buckets(words, 3, cap=10_000) == 10_000  # the cap: counting stops there
    assert ngram_buckets(words, 2, per_ngram=1_000) == FASTTEXT_BUCKETS
