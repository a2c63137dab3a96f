"""The web recall model (fastText) on a real dump: training and inference throughput per core, peak RSS, and
how well it recalls code-related pages of sites it has never seen.

    python benchmarks/bench_web_recall.py [--dump DIR | --pages DIR] [--seeds 5] [--bucket N] [--out results.json]

--bucket sets fastText's n-gram hash buckets (its default is 2,000,000; ours sizes them to the training
pages), so the two can be compared on the same sites and seeds: the model's size against what it recalls.

Truth is the sample's provenance, not anything the pipeline computes: a page is code-related when it comes
from a programming manual or API reference package (python3.11-doc, postgresql-doc, git-doc, ...) and not when
it comes from application help or a non-programming manual (`seedcoder sample-web` writes which, per URL,
to provenance.jsonl). The oracle's labels are what the pipeline trains on; this measures the model itself.

Per seed, the pipeline's own `train_recall` splits the sites (pages of one site share templates) into
training, threshold-fitting and checking sites, each with sites of both labels, and fits the threshold for
the recall target on the fitting sites. The benchmark then loads the stored model with fastText and
measures recall and precision itself, against provenance, on the checking sites' pages without code tags
(the pages the model is used on; the threshold never saw them). fastText runs on one thread (thread pools
pinned); CPU seconds are the process's own.
"""

from __future__ import annotations

import os

os.environ.update({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seedcoder_assets.core.stats import LineageWriter  # noqa: E402
from seedcoder_assets.core.web.pages import WebPageParams, extract_pages  # noqa: E402
from seedcoder_assets.core.web.recall import (  # noqa: E402
    LABEL_CODE,
    MODEL_FILE,
    Example,
    RecallParams,
    average_precision,
    page_line,
    pr_curve,
    train_recall,
)
from seedcoder_assets.sample_web import PROVENANCE, build_dump  # noqa: E402


def p_code(model, part: list[Example]) -> np.ndarray:
    labels, probs = model.predict([e.line for e in part], k=2)
    return np.array([dict(zip(ls, ps)).get(LABEL_CODE, 0.0) for ls, ps in zip(labels, probs)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", type=Path, help="a web dump built by seedcoder sample-web (default: build the large)")
    ap.add_argument("--pages", type=Path, help="its web_pages output, if already extracted")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--bucket", type=int, help="fastText's n-gram hash buckets (default: sized to the pages)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    import fasttext
    import polars as pl

    work = Path(tempfile.mkdtemp(prefix="bench-web-recall-"))
    dump = a.dump or build_dump(work / "large", "large")
    pages_dir = a.pages
    if pages_dir is None:
        pages_dir = work / "pages"
        extract_pages("large", str(dump), str(pages_dir), LineageWriter(str(work), "web_pages", "large", "b", "web"),
                      WebPageParams())
    kind = {}
    for line in (dump / PROVENANCE).read_text().splitlines():
        p = json.loads(line)
        kind[p["url"]] = p["kind"] == "programming"
    pages = pl.read_parquet(f"{pages_dir}/*.parquet", columns=["id", "url", "host", "title", "text", "size", "code_tag"])
    params = RecallParams(bucket=a.bucket)
    examples = [Example(r["id"], r["host"], page_line(r["title"], r["text"], params.max_tokens), kind[r["url"]],
                        r["code_tag"]) for r in pages.iter_rows(named=True) if r["url"] in kind]
    mb = pages["size"].sum() / 1e6
    hosts: dict[str, bool] = {}
    for e in examples:  # every site of this sample is one package: one label
        hosts[e.host] = e.code

    results = []
    train_cpu = train_pages = 0.0
    model_mb: list[float] = []
    buckets: list[int] = []
    for seed in range(a.seeds):
        p = params.model_copy(update={"seed": seed})
        t0 = time.process_time()
        report = train_recall(examples, p, work / f"model-{seed}")
        train_cpu += time.process_time() - t0
        train_pages += report["n_train"] * p.epoch
        model = fasttext.load_model(str(work / f"model-{seed}" / MODEL_FILE))
        model_mb.append((work / f"model-{seed}" / MODEL_FILE).stat().st_size / 1e6)
        buckets.append(report["bucket"])
        shutil.rmtree(work / f"model-{seed}")  # 520 MB each at fastText's default buckets
        checking = set(report["checking_sites"])
        report_pages = [e for e in examples if e.host in checking and not e.tagged]
        scores, truth = p_code(model, report_pages), np.array([e.code for e in report_pages])
        recalled = scores >= report["threshold"]
        results.append({
            "seed": seed, "checking_sites": sorted(checking), "fitting_sites": report["fitting_sites"],
            "threshold": report["threshold"], "fit_recall": report["fit_recall"], "report_pages": len(report_pages),
            "recall": float(recalled[truth].mean()) if truth.any() else None,
            "precision": float(truth[recalled].mean()) if recalled.any() else None,
            "positive_share": float(truth.mean()), "recalled_share": float(recalled.mean()),
            "average_precision": average_precision(pr_curve(scores, truth)) if truth.any() else None})

    t0 = time.process_time()  # inference as the stage does it: tokenise the page, then predict
    lines = [page_line(r["title"], r["text"], params.max_tokens) for r in pages.iter_rows(named=True)]
    model.predict(lines, k=2)
    infer_cpu = time.process_time() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Pages: {len(examples)} from {len(hosts)} sites ({sum(hosts.values())} programming), {mb:.1f} MB of "
          f"text; {sum(e.code for e in examples)} code-related by provenance, "
          f"{sum(e.code and not e.tagged for e in examples)} of them without code tags\n")
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    print("| seed | checking sites | pages without code tags | threshold (fitted on) | recall | precision | "
          "code share | recalled share | AP |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['seed']} | {', '.join(r['checking_sites'])} | {r['report_pages']} | {r['threshold']:.3f} "
              f"({', '.join(r['fitting_sites'])}) | {f(r['recall'])} | {f(r['precision'])} | "
              f"{r['positive_share']:.2f} | {r['recalled_share']:.2f} | {f(r['average_precision'])} |")
    measured = {k: [r[k] for r in results if r[k] is not None] for k in ("recall", "precision", "average_precision")}
    mean = {k: float(np.mean(v)) if v else None for k, v in measured.items()}
    print(f"\nMean over the {len(measured['recall'])} of {len(results)} seeds whose checking sites have code-related "
          f"pages without code tags: recall {f(mean['recall'])}, precision {f(mean['precision'])}, "
          f"AP {f(mean['average_precision'])} (target recall {params.target_recall})")
    print(f"\nfastText, one thread: training (train_recall whole: its file, fastText, scoring the held-out sites) {train_pages / max(train_cpu, 1e-9):,.0f} page-epochs per CPU-s; "
          f"inference {len(lines) / max(infer_cpu, 1e-9):,.0f} pages and {mb / max(infer_cpu, 1e-9):.1f} MB of text "
          f"per CPU-s (tokenising included; pages cut to {params.max_tokens} tokens); peak RSS {rss:.0f} MB")
    print(f"n-gram hash buckets {min(buckets):,} to {max(buckets):,} "
          f"({'set' if a.bucket else 'sized to the training pages'}); model {np.mean(model_mb):.0f} MB")
    if a.out:
        a.out.write_text(json.dumps({"seeds": results, "mean": mean, "train_page_epochs_per_cpu_s":
                                     train_pages / max(train_cpu, 1e-9), "infer_pages_per_cpu_s":
                                     len(lines) / max(infer_cpu, 1e-9), "infer_mb_per_cpu_s": mb / max(infer_cpu, 1e-9),
                                     "peak_rss_mb": rss, "pages": len(examples), "sites": len(hosts),
                                     "buckets": buckets, "model_mb": model_mb}, indent=2))
    if a.dump is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
