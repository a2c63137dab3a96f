"""Syntax check: per-language limits fitted on one half of the repositories, reported on the other.

    python benchmarks/bench_syntax.py --files CODE_FILES_PARTITION [--per-language 3000] [--target 0.02]

On real released files (e.g. filters/code_files of the large crawl), sampled per language:
- accepted: the file passes its language's own checker where one runs here (Python: compile(), JSON:
  json.loads, JavaScript: V8 via node); elsewhere every released file counts as accepted, so a drop is
  an upper bound of a false drop;
- broken: each accepted file cut at a random point in its middle half (for checked languages, only the
  cuts its checker rejects);
- split by repository (seeded hash of the project name): the limit is fitted on the fit half and the
  figures are measured on the report half only;
- the rule: the smallest error-share limit of the grid whose false-drop rate on the fit half is at most
  `--target`; a language with fewer than `--min-files` accepted fit files stays unchecked, as does one
  no limit of the grid fits (the grammar disagrees with released code);
- both grammar packages (tree-sitter-language-pack 0.13, tree-sitter-languages 1.10 in its own venv)
  go through the same rule, error-share definition and C/CUDA -> C++ fallback;
- throughput: raw `parser.parse` + `has_error` vs the whole syntax stage, MB/s on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from seedcoder_assets.core.filters.syntax import (  # noqa: E402
    DEFAULT_MAX_ERROR_SHARE,
    DEFAULT_UNCHECKED,
    SyntaxParams,
    check,
    filter_syntax,
    parser_for,
)
from seedcoder_assets.core.languages import FALLBACK_GRAMMARS, grammar_of  # noqa: E402
from seedcoder_assets.core.parquet_io import PartWriter, iter_batches  # noqa: E402
from seedcoder_assets.core.schemas import FILE_SCHEMA  # noqa: E402
from seedcoder_assets.core.stats import LineageWriter  # noqa: E402

GRID = [0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]


def python_ok(text: str) -> bool:
    try:
        compile(text, "<file>", "exec", dont_inherit=True)
        return True
    except (SyntaxError, ValueError):
        return False


def json_ok(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def node_ok(texts: list[str]) -> list[bool]:
    proc = subprocess.run(["node", "--experimental-vm-modules", "--no-warnings", str(HERE / "js_check.mjs")],
                          input="".join(json.dumps({"text": t}) + "\n" for t in texts), capture_output=True, text=True)
    return [json.loads(x) for x in proc.stdout.splitlines()]


CHECKERS = {"Python": ("compile()", lambda ts: [python_ok(t) for t in ts]),
            "JSON": ("json.loads", lambda ts: [json_ok(t) for t in ts]),
            "JavaScript": ("node (V8)", node_ok)}


def tsl_shares(items: list[tuple[str, str]]) -> list[float | None]:
    py = HERE / ".venv-tsl" / "bin" / "python"
    if not py.exists():
        return [None] * len(items)
    lines = "".join(json.dumps({"grammars": [g, *FALLBACK_GRAMMARS.get(g, ())], "text": t}) + "\n" for g, t in items)
    proc = subprocess.run([str(py), str(HERE / "tsl_has_error.py")], input=lines, capture_output=True, text=True)
    return [json.loads(x) for x in proc.stdout.splitlines()]


def sample_by_language(uri: str, per_language: int, seed: int = 0) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    seen: dict[str, int] = defaultdict(int)
    out: dict[str, list[dict]] = defaultdict(list)
    for batch in iter_batches(uri, ["id", "crawl", "repo", "path", "language", "size", "sha256", "content"], 2048):
        for r in batch.to_pylist():
            if grammar_of(r["language"], r["path"]) is None:
                continue
            lang = r["language"]
            seen[lang] += 1
            if len(out[lang]) < per_language:
                out[lang].append(r)
            elif (j := rng.randrange(seen[lang])) < per_language:
                out[lang][j] = r
    return out


def error_shares(package: str, lang: str, items: list[dict], strict: SyntaxParams) -> list[float | None]:
    """Error share of each file under one grammar package, by the pipeline's rule (fallbacks included)."""
    if package == "pack":
        return [check(f["content"], lang, f["path"], strict)[1] for f in items]
    return tsl_shares([(grammar_of(lang, f["path"]), f["content"]) for f in items])


def in_fit_half(repo: str, seed: int) -> bool:
    project = re.sub(r"-v?\d+(\.\d+)*([a-z]+\d*)?$", "", repo)  # releases of one project stay together
    return hashlib.blake2b(f"{seed}:{project}".encode(), digest_size=8).digest()[0] < 128


def fit(shares: list[float], target: float, min_files: int) -> float | None:
    """The smallest grid limit with a false-drop rate <= target on these accepted files; None: unchecked."""
    if len(shares) < min_files:
        return None
    return next((lim for lim in GRID if sum(x > lim for x in shares) / len(shares) <= target), None)


def rate(shares: list[float], limit: float | None) -> float | None:
    if limit is None or not shares:
        return None
    return sum(x > limit for x in shares) / len(shares)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True)
    ap.add_argument("--per-language", type=int, default=3000)
    ap.add_argument("--target", type=float, default=0.02, help="highest false-drop rate allowed on the fit half")
    ap.add_argument("--min-files", type=int, default=40, help="fewer accepted fit files: the language stays unchecked")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    a = ap.parse_args()
    rng = random.Random(1)
    by_lang = sample_by_language(a.files, a.per_language)
    strict = SyntaxParams(max_error_share={}, default_max_error_share=0.0, unchecked_languages=frozenset())
    rows = []
    for lang, files in sorted(by_lang.items(), key=lambda kv: -len(kv[1])):
        checker, accepts = CHECKERS.get(lang, ("released", lambda ts: [True] * len(ts)))
        ok = [f for f, acc in zip(files, accepts([f["content"] for f in files])) if acc]
        cuts = []
        for f in ok:  # each accepted file cut at a random point in its middle half
            t = f["content"]
            cuts.append({**f, "content": t[: rng.randrange(len(t) // 4, max(len(t) // 4 + 1, 3 * len(t) // 4))]})
        if lang in CHECKERS:  # only cuts that the language's own checker rejects are really broken
            cuts = [c for c, acc in zip(cuts, CHECKERS[lang][1]([c["content"] for c in cuts])) if not acc]
        row = {"language": lang, "checker": checker, "files": len(files), "accepted": len(ok)}
        for package in ("pack", "tsl"):
            good, bad = (error_shares(package, lang, ok, strict), error_shares(package, lang, cuts, strict))
            if any(x is None for x in good):  # the package has no grammar for this language
                row[package] = None
                continue
            halves = {h: ([s for f, s in zip(ok, good) if in_fit_half(f["repo"], a.seed) == h],
                          [s for f, s in zip(cuts, bad) if in_fit_half(f["repo"], a.seed) == h]) for h in (True, False)}
            limit = fit(halves[True][0], a.target, a.min_files)
            row[package] = {"fit_files": len(halves[True][0]), "report_files": len(halves[False][0]),
                            "limit": limit, "false_drops": rate(halves[False][0], limit),
                            "caught": rate(halves[False][1], limit),
                            "has_error": sum(x > 0 for x in good) / len(good) if good else None}
            if package == "pack":  # the shipped defaults, on the report half too
                shipped = None if lang in DEFAULT_UNCHECKED else DEFAULT_MAX_ERROR_SHARE.get(lang, 0.02)
                row["shipped"] = {"limit": shipped, "false_drops": rate(halves[False][0], shipped),
                                  "caught": rate(halves[False][1], shipped)}
        rows.append(row)

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.1f}%"

    def lim(x: float | None) -> str:
        return "unchecked" if x is None else f"{x:g}"

    print(f"Limits fitted on the fit half (largest false-drop rate {100 * a.target:.0f}%), measured on the report half.\n")
    print("| language | checker | accepted (fit / report) | pack: limit | false drops | broken caught | "
          "tree-sitter-languages: limit | false drops | broken caught | shipped limit | false drops | broken caught |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p, t, s = r.get("pack"), r.get("tsl"), r["shipped"] if "shipped" in r else {}
        tcols = "n/a | n/a | n/a" if not t else f"{lim(t['limit'])} | {pct(t['false_drops'])} | {pct(t['caught'])}"
        print(f"| {r['language']} | {r['checker']} | {p['fit_files']} / {p['report_files']} | {lim(p['limit'])} | "
              f"{pct(p['false_drops'])} | {pct(p['caught'])} | {tcols} | {lim(s.get('limit'))} | "
              f"{pct(s.get('false_drops'))} | {pct(s.get('caught'))} |")
    # Throughput: raw parse vs the stage, on the same files.
    all_files = [f for files in by_lang.values() for f in files]
    data = [(grammar_of(f["language"], f["path"]), f["content"].encode()) for f in all_files]
    mb = sum(len(d) for _, d in data) / 1e6
    for g, _ in data:
        parser_for(g)
    t0 = time.process_time()
    for g, d in data:
        _ = parser_for(g).parse(d).root_node.has_error
    raw = time.process_time() - t0
    with tempfile.TemporaryDirectory() as tmp:
        src = f"{tmp}/src"
        with PartWriter(src, FILE_SCHEMA) as w:
            for i in range(0, len(all_files), 1000):
                w.write_rows(all_files[i:i + 1000])
        t0 = time.process_time()
        filter_syntax(src, f"{tmp}/dst", LineageWriter(tmp, "syntax", "bench", "bench"), SyntaxParams())
        stage = time.process_time() - t0
    print(f"\nthroughput on {mb:.1f} MB: raw tree-sitter parse {mb / raw:.2f} MB/s, syntax stage {mb / stage:.2f} MB/s "
          f"({100 * raw / stage:.0f}% of raw)")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "syntax.json").write_text(json.dumps({"languages": rows, "raw_mb_s": mb / raw, "stage_mb_s": mb / stage,
                                                   "mb": mb, "target": a.target}, indent=1))


if __name__ == "__main__":
    main()
