"""Syntax check: calibration per language, grammar packages compared, and throughput.

    python benchmarks/bench_syntax.py --files LAKE_PARTITION [--per-language 3000]

On real released files (a partition of code files, e.g. filters/code_files of the large crawl):
- accepted: the file passes its language's own checker where one runs here (Python: compile(),
  JSON: json.loads, JavaScript: V8 via node as script or module); elsewhere every released file
  counts as accepted, so the drop rate is an upper bound of the false-drop rate;
- has_error rate among accepted files for tree-sitter-language-pack 0.13 and tree-sitter-languages
  1.10.2 (its own venv, benchmarks/.venv-tsl), i.e. the false-error rate of a literal has_error rule;
- error-share rule: false drops among accepted files and detection of broken files (each accepted
  file cut at a random point in its middle half) at the configured per-language limits;
- throughput: raw `parser.parse` + `has_error` vs the whole syntax stage, MB/s on one core.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from seedcoder_assets.core.filters.syntax import SyntaxParams, check, filter_syntax, parser_for  # noqa: E402
from seedcoder_assets.core.languages import grammar_of  # noqa: E402
from seedcoder_assets.core.parquet_io import PartWriter, iter_batches  # noqa: E402
from seedcoder_assets.core.schemas import FILE_SCHEMA  # noqa: E402
from seedcoder_assets.core.stats import LineageWriter  # noqa: E402

LIMITS = [0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]


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


def tsl_has_error(items: list[tuple[str, str]]) -> list[bool | None]:
    py = HERE / ".venv-tsl" / "bin" / "python"
    if not py.exists():
        return [None] * len(items)
    proc = subprocess.run([str(py), str(HERE / "tsl_has_error.py")],
                          input="".join(json.dumps({"grammar": g, "text": t}) + "\n" for g, t in items),
                          capture_output=True, text=True)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True)
    ap.add_argument("--per-language", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    a = ap.parse_args()
    params = SyntaxParams()
    rng = random.Random(1)
    by_lang = sample_by_language(a.files, a.per_language)
    checkers = {"Python": ("compile()", lambda ts: [python_ok(t) for t in ts]),
                "JSON": ("json.loads", lambda ts: [json_ok(t) for t in ts]),
                "JavaScript": ("node (V8)", node_ok)}
    strict = SyntaxParams(max_error_share={}, default_max_error_share=0.0, unchecked_languages=frozenset())
    rows = []
    for lang, files in sorted(by_lang.items(), key=lambda kv: -len(kv[1])):
        checker, accepts = checkers.get(lang, ("released", lambda ts: [True] * len(ts)))
        ok = [f for f, acc in zip(files, accepts([f["content"] for f in files])) if acc]
        if not ok:
            continue
        share = [check(f["content"], lang, f["path"], strict)[1] for f in ok]
        tsl = [x for x in tsl_has_error([(grammar_of(lang, f["path"]), f["content"]) for f in ok]) if x is not None]
        cuts = []
        for f in ok:  # a file cut at a random point in its middle half
            t = f["content"]
            cuts.append((f["path"], t[: rng.randrange(len(t) // 4, max(len(t) // 4 + 1, 3 * len(t) // 4))]))
        if lang in checkers:  # only cuts that the language's own checker rejects are really broken
            cuts = [c for c, acc in zip(cuts, checkers[lang][1]([t for _, t in cuts])) if not acc]
        cut_share = [check(t, lang, p, strict)[1] for p, t in cuts]
        limit = 1.0 if lang in params.unchecked_languages else params.limit(lang)
        rows.append({
            "language": lang, "checker": checker, "files": len(files), "accepted": len(ok),
            "pack_has_error": sum(x > 0 for x in share) / len(ok),
            "tsl_has_error": sum(tsl) / len(tsl) if tsl else None,
            "limit": limit, "false_drop": sum(x > limit for x in share) / len(ok),
            "broken_detected": sum(x > limit for x in cut_share) / len(cut_share) if cut_share else None,
            "curve": {str(lim): [sum(x > lim for x in share) / len(ok),
                                 sum(x > lim for x in cut_share) / max(1, len(cut_share))] for lim in LIMITS},
        })
    print("| language | checker | files | accepted | has_error: language-pack 0.13 | has_error: tree-sitter-languages 1.10 "
          "| error-share limit | false drops | broken files caught |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tsl = "n/a" if r["tsl_has_error"] is None else f"{100 * r['tsl_has_error']:.1f}%"
        caught = "n/a" if r["broken_detected"] is None else f"{100 * r['broken_detected']:.1f}%"
        print(f"| {r['language']} | {r['checker']} | {r['files']} | {r['accepted']} | {100 * r['pack_has_error']:.1f}% | "
              f"{tsl} | {'unchecked' if r['language'] in params.unchecked_languages else r['limit']} | "
              f"{100 * r['false_drop']:.1f}% | {caught} |")
    print("\nfalse drops / broken caught by limit:")
    for r in rows:
        print(r["language"], "  ".join(f"{k}: {100 * v[0]:.1f}/{100 * v[1]:.0f}" for k, v in r["curve"].items()))
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
        filter_syntax(src, f"{tmp}/dst", LineageWriter(tmp, "syntax", "bench", "bench"), params)
        stage = time.process_time() - t0
    print(f"\nthroughput on {mb:.1f} MB: raw tree-sitter parse {mb / raw:.2f} MB/s, syntax stage {mb / stage:.2f} MB/s "
          f"({100 * raw / stage:.0f}% of raw)")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "syntax.json").write_text(json.dumps({"languages": rows, "raw_mb_s": mb / raw, "stage_mb_s": mb / stage,
                                                   "mb": mb}, indent=1))


if __name__ == "__main__":
    main()
