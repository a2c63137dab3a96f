"""Pictures for asset metadata, as markdown images the Dagster UI renders inline."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa


def _figure(width: float = 7.0, height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height), dpi=90)


def _markdown(plt, fig, title: str) -> dg.MetadataValue:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def bar_chart_markdown(title: str, counts: Mapping[Any, int], xlabel: str, top: int = 30) -> dg.MetadataValue:
    """Counts as bars: integer keys in order, other keys the `top` largest first."""
    plt, fig, ax = _figure(7.0, 3.2)
    items = sorted(counts.items()) if all(isinstance(k, int) for k in counts) else \
        sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    ax.bar([str(k) for k, _ in items], [v for _, v in items], color="#4f6fb3")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    return _markdown(plt, fig, title)


def boxplot_by_rating_markdown(predictions: Sequence[float], targets: Sequence[int]) -> dg.MetadataValue:
    """The paper's Figure 13: predicted scores per ground-truth rating, means as white squares."""
    plt, fig, ax = _figure()
    pred, true = np.asarray(predictions), np.asarray(targets)
    ratings = [r for r in range(11) if (true == r).any()]
    groups = [pred[true == r] for r in ratings]
    if groups:
        ax.boxplot(groups, positions=ratings, widths=0.6, showmeans=True, showfliers=False,
                   meanprops={"marker": "s", "markerfacecolor": "white", "markeredgecolor": "black"})
    ax.plot([0, 10], [0, 10], ls=":", color="grey")
    ax.set_xlim(-0.7, 10.7)
    ax.set_ylim(-0.5, 10.5)
    ax.set_xlabel("oracle rating")
    ax.set_ylabel("predicted score")
    ax.set_title("held-out predictions per oracle rating")
    return _markdown(plt, fig, "predicted score per oracle rating")


def line_markdown(title: str, values: Sequence[float], xlabel: str) -> dg.MetadataValue:
    plt, fig, ax = _figure(height=2.8)
    ax.plot(list(values), color="#4f6fb3")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _markdown(plt, fig, title)


def histograms_by_language_markdown(before: pa.Table, after: pa.Table, threshold: float,
                                    top: int = 8) -> dg.MetadataValue:
    """Score histograms of the most common languages, all files vs. kept files, with the threshold."""
    return histograms_by_group_markdown(before, after, "language", "score", lambda _: threshold,
                                        "quality scores per language, before and after the cut", top)


def histograms_by_group_markdown(before: pa.Table, after: pa.Table, group: str, score: str,
                                 threshold: Callable[[str], float], title: str, top: int = 8) -> dg.MetadataValue:
    """Histograms of `score` for the `top` largest groups (languages, site categories), all rows vs. kept
    rows, each with its group's threshold."""
    counts = {v["values"]: v["counts"] for v in before[group].value_counts().to_pylist() if v["values"] is not None}
    groups = sorted(counts, key=lambda g: -counts[g])[:top]
    cols = 4
    rows = max(1, (len(groups) + cols - 1) // cols)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.4 * rows), dpi=80, squeeze=False)
    bins = np.linspace(0, 10, 21) if before[score].type != pa.int8() else np.arange(-0.5, 11, 1.0)
    for ax, g in zip(axes.flat, groups):
        b = before.filter(pa.compute.equal(before[group], g))[score].drop_null().to_numpy()
        a = after.filter(pa.compute.equal(after[group], g))[score].drop_null().to_numpy()
        ax.hist(b, bins=bins, color="#c9d3ea", label=f"all ({len(b)})")
        ax.hist(a, bins=bins, color="#4f6fb3", label=f"kept ({len(a)})")
        ax.axvline(threshold(g) - (0.5 if before[score].type == pa.int8() else 0), color="#b33", lw=1)
        ax.set_title(g, fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    return _markdown(plt, fig, title)


def pr_curve_markdown(curve: Sequence[Mapping[str, float]], chosen: Mapping[str, float]) -> dg.MetadataValue:
    """A precision-recall curve with the chosen threshold's point marked."""
    plt, fig, ax = _figure(5.5, 3.6)
    ax.plot([p["recall"] for p in curve], [p["precision"] for p in curve], color="#4f6fb3")
    ax.plot([chosen["recall"]], [chosen["precision"]], "o", color="#b33",
            label=f"threshold {chosen['threshold']:.3f}")
    ax.set_xlabel("recall (held-out sites)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("recall model: precision-recall on held-out sites")
    return _markdown(plt, fig, "precision-recall curve")


def histogram_markdown(title: str, values: Sequence[float], xlabel: str, bins: int = 30) -> dg.MetadataValue:
    plt, fig, ax = _figure(height=3.0)
    ax.hist(list(values), bins=bins, color="#4f6fb3")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _markdown(plt, fig, title)


def dependency_graph_markdown(title: str, paths: Sequence[str], edges: Sequence[Sequence[int]],
                              breaks: Sequence[Sequence[int]] = ()) -> dg.MetadataValue:
    """A sequence's files as a layered graph: a file's column is one more than its deepest dependency's
    (dependencies on the left), arrows from each file to what it imports, cycle breaks dashed red."""
    plt, fig, ax = _figure(9.0, max(3.0, min(12.0, 0.28 * len(paths) + 1)))
    broken = {tuple(e) for e in breaks}
    layer = [0] * len(paths)
    for user, dep in sorted(edges, key=lambda e: e[0]):
        if tuple((user, dep)) not in broken and dep < user:
            layer[user] = max(layer[user], layer[dep] + 1)
    rows: dict[int, int] = {}
    pos = []
    for i in range(len(paths)):
        rows[layer[i]] = rows.get(layer[i], 0) + 1
        pos.append((layer[i], -rows[layer[i]]))
    for user, dep in edges:
        (x0, y0), (x1, y1) = pos[user], pos[dep]
        dashed = tuple((user, dep)) in broken
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={
            "arrowstyle": "->", "lw": 0.6, "color": "#c0392b" if dashed else "#7f8c8d",
            "linestyle": "--" if dashed else "-", "shrinkA": 4, "shrinkB": 4})
    for i, (x, y) in enumerate(pos):
        ax.plot([x], [y], "o", color="#4f6fb3", ms=4)
        ax.text(x + 0.06, y, paths[i].rsplit("/", 1)[-1], fontsize=6, va="center")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("dependency depth (imports point left)")
    ax.set_yticks([])
    ax.set_xlim(-0.5, max(layer, default=0) + 1.2)
    return _markdown(plt, fig, title)


def mixture_markdown(title: str, configured: Mapping[str, float], realised: Mapping[str, float],
                     epochs: Mapping[str, float]) -> dg.MetadataValue:
    """A phase's share of tokens per source, configured next to realised, each bar labelled with its epochs."""
    import numpy as np

    plt, fig, ax = _figure(7.5, 3.4)
    names = list(configured)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [configured[n] for n in names], 0.4, label="configured", color="#9fb3d9")
    bars = ax.bar(x + 0.2, [realised.get(n, 0.0) for n in names], 0.4, label="realised", color="#4f6fb3")
    for bar, n in zip(bars, names):
        ax.annotate(f"{epochs.get(n, 0.0):.2f} ep", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("share of tokens")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _markdown(plt, fig, title)
