"""The web corpus's reading, extraction and dedup on a real dump, against datatrove's WARC reader plus its
default Trafilatura extractor on the same WARC files in the same run.

    python benchmarks/bench_web.py [--dump DIR] [--work DIR] [--out results.json]

The dump defaults to `seedcoder sample-web --which large` (Debian documentation packages as WARC files,
about 10,000 records). Every job runs in a fresh process with thread pools pinned to one thread; its CPU
seconds (user + system, the process and everything it waited for) and peak RSS come from the kernel
(getrusage of the children), its wall time from the clock around it. Jobs, each reading the same files
and writing its output inside the timer:
- read-fastwarc / read-warcio: every response record's block read, nothing else (the reader choice);
- pages: our `web_pages` stage (FastWARC, strict HTTP, charsets, Resiliparse text, lexbor code blocks,
  Parquet and lineage written);
- datatrove: `WarcReader -> Trafilatura() -> JsonlWriter` with datatrove 0.10.1's defaults (its own
  environment, benchmarks/.venv-datatrove: datatrove pins trafilatura < 1.12);
- dedup: our `deduped_web_pages` stage on the pages job's output.

Code blocks, scored by a third parser: for every page both pipelines kept, Python's html.parser reads the
`<pre>` blocks out of the raw record (warcio); a block is *kept* when it appears in the page's text
verbatim (line ends normalised), and an *indented line* is kept when it is a line of the text as it was.
"""

from __future__ import annotations

import os

PINNED = {"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1", "NUMBA_NUM_THREADS": "1",
          "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(PINNED)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
DATATROVE_PY = HERE / ".venv-datatrove" / "bin" / "python"

JOBS = {
    "read-fastwarc": """
import glob, sys
from fastwarc.warc import ArchiveIterator, WarcRecordType
n = b = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.warc.gz")):
    with open(path, "rb") as f:
        try:
            for r in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=False):
                b += len(r.reader.read()); n += 1
        except OSError:
            pass
print(n, b)
""",
    "read-warcio": """
import glob, sys
from warcio.archiveiterator import ArchiveIterator
n = b = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.warc.gz")):
    with open(path, "rb") as f:
        try:
            for r in ArchiveIterator(f):
                if r.rec_type == "response":
                    b += len(r.raw_stream.read()); n += 1
        except Exception:
            pass
print(n, b)
""",
    "pages": """
import sys
from seedcoder_assets.core.stats import LineageWriter
from seedcoder_assets.core.web.pages import WebPageParams, extract_pages
dump, out = sys.argv[1:3]
stats = extract_pages("bench", dump, out + "/pages", LineageWriter(out, "web_pages", "bench", "r", "web"), WebPageParams())
print(stats.rows_out, stats.rows_in)
""",
    "dedup": """
import sys
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.stats import LineageWriter
from seedcoder_assets.core.web.dedup import dedup_pages
out = sys.argv[2]
stats = dedup_pages(out + "/pages", out + "/deduped", LineageWriter(out, "deduped_web_pages", "bench", "r", "web"),
                    MinHashParams(), DedupIndex(out + "/index"), [], duckdb_connect(memory_limit="1GB"))
print(stats.rows_out, stats.rows_in)
""",
    "datatrove": """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.writers import JsonlWriter
dump, out = sys.argv[1:3]
LocalPipelineExecutor(pipeline=[WarcReader(dump, glob_pattern="*.warc.gz"), Trafilatura(),
                                JsonlWriter(out + "/datatrove", compression=None)],
                      tasks=1, workers=1, logging_dir=out + "/datatrove-logs").run()
print(0, 0)
""",
}


def run_job(name: str, dump: Path, out: Path) -> dict:
    """One job in a fresh process: CPU seconds and peak RSS of it and its children, wall seconds."""
    python = str(DATATROVE_PY) if name == "datatrove" else sys.executable
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([python, "-c", JOBS[name], str(dump), str(out)], env={**os.environ, **PINNED},
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    first, second = (int(x) for x in done.stdout.split()[-2:])
    return {"job": name, "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
            "wall_s": round(wall, 2), "peak_rss_mb": round(after.ru_maxrss / 1024, 1), "out": first, "in": second}


def gzip_whole(path: Path) -> bool:
    """Whether every gzip member of a file ends (read outside any timer)."""
    import gzip

    try:
        with gzip.open(path) as f:
            while f.read(1 << 24):
                pass
        return True
    except (EOFError, OSError):
        return False


def _norm(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def code_fidelity(dump: Path, ours: dict[str, str], theirs: dict[str, str]) -> dict:
    """<pre> blocks (html.parser on the raw record, read by warcio) kept verbatim in each pipeline's text,
    on the pages both kept."""
    from warcio.archiveiterator import ArchiveIterator

    from seedcoder_assets.core.web.checks import pre_blocks
    from seedcoder_assets.core.web.http import decode_text

    stats = {k: {"blocks": 0, "blocks_kept": 0, "indented_lines": 0, "indented_kept": 0} for k in ("ours", "datatrove")}
    pages = 0
    for path in sorted(dump.glob("*.warc.gz")):
        with open(path, "rb") as f:
            try:
                for r in ArchiveIterator(f):
                    url = r.rec_headers.get_header("WARC-Target-URI")
                    if r.rec_type != "response" or url not in ours or url not in theirs:
                        continue
                    charset = (r.http_headers.get_header("Content-Type") or "").partition("charset=")[2] or None
                    html, _, _ = decode_text(r.content_stream().read(), charset)
                    blocks = pre_blocks(html)
                    if not blocks:
                        continue
                    pages += 1
                    for name, text in (("ours", _norm(ours[url])), ("datatrove", _norm(theirs[url]))):
                        s, lines = stats[name], set(text.split("\n"))
                        for block in blocks:
                            s["blocks"] += 1
                            s["blocks_kept"] += block.strip("\n") in text
                            for line in block.split("\n"):
                                if line.strip() and line[:1] in " \t":
                                    s["indented_lines"] += 1
                                    s["indented_kept"] += line in lines
            except Exception:  # noqa: BLE001 - the cut last file: what was read counts
                pass
    return {"pages_with_pre": pages, **{k: {**v, "block_share": round(v["blocks_kept"] / max(1, v["blocks"]), 4),
                                            "indented_share": round(v["indented_kept"] / max(1, v["indented_lines"]), 4)}
                                        for k, v in stats.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", type=Path, help="a web dump folder (default: build the large sample)")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if not DATATROVE_PY.exists():
        sys.exit("run benchmarks/setup_envs.sh first (datatrove's environment)")
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-web-"))
    dump = a.dump
    if dump is None:
        from seedcoder_assets.sample_web import build_dump

        dump = build_dump(work / "landing" / "large", "large")
    # datatrove's task dies on a WARC file cut short (EOFError from gzip: the whole task's output is lost), so
    # the timed jobs read the files that are whole, and each pipeline is run once more on the dump as landed.
    intact = work / "intact"
    shutil.rmtree(intact, ignore_errors=True)
    intact.mkdir(parents=True)
    for p in sorted(dump.glob("*.warc.gz")):
        if gzip_whole(p):
            (intact / p.name).symlink_to(p.resolve())
    (intact / "warc.paths").write_text("".join(p.name + "\n" for p in sorted(intact.glob("*.warc.gz"))))
    warc_mb = sum(p.stat().st_size for p in intact.glob("*.warc.gz")) / 1e6
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    runs = {name: run_job(name, intact, out) for name in ("read-fastwarc", "read-warcio", "pages", "dedup", "datatrove")}
    landed = {}
    for name in ("pages", "datatrove"):
        shutil.rmtree(work / "landed", ignore_errors=True)
        (work / "landed").mkdir()
        try:
            landed[name] = f"finished, {run_job(name, dump, work / 'landed')['out'] or 'its'} pages"
        except RuntimeError as exc:
            landed[name] = "failed: " + str(exc).strip().splitlines()[-1][:160]

    import polars as pl

    ours_df = pl.read_parquet(f"{out}/pages/*.parquet", columns=["url", "text"])
    ours = dict(zip(ours_df["url"], ours_df["text"]))
    theirs: dict[str, str] = {}
    for path in sorted((out / "datatrove").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            theirs[doc["metadata"]["url"]] = doc["text"]
    runs["datatrove"]["out"] = len(theirs)
    fidelity = code_fidelity(dump, ours, theirs)

    skipped = sorted({p.name for p in dump.glob("*.warc.gz")} - {p.name for p in intact.glob("*.warc.gz")})
    print(f"Dump: {dump}: {warc_mb:.1f} MB of whole WARC files, {runs['read-fastwarc']['out']} response records "
          f"(left out of the timed runs, cut short: {', '.join(skipped) or 'none'})\n")
    print("| job | pages out | CPU s | wall s | MB of WARC per CPU-s | records or pages per CPU-s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        per = r["out"] if name not in ("read-fastwarc", "read-warcio") else r["out"]
        print(f"| {name} | {r['out']} | {r['cpu_s']} | {r['wall_s']} | {warc_mb / max(r['cpu_s'], 1e-9):.2f} | "
              f"{per / max(r['cpu_s'], 1e-9):.0f} | {r['peak_rss_mb']} |")
    speed = runs["datatrove"]["cpu_s"] / max(runs["pages"]["cpu_s"], 1e-9)
    print("\nOn the dump as landed (with the file cut short): "
          + "; ".join(f"{name}: {what}" for name, what in landed.items()))
    print(f"\nOur page stage vs datatrove's reader + Trafilatura, CPU seconds: {speed:.1f}x")
    print("\n| pipeline | pages with <pre> (both kept) | <pre> blocks | kept verbatim | indented lines | kept |")
    print("|---|---|---|---|---|---|")
    for name in ("ours", "datatrove"):
        f = fidelity[name]
        print(f"| {name} | {fidelity['pages_with_pre']} | {f['blocks']} | {f['block_share']:.1%} | "
              f"{f['indented_lines']} | {f['indented_share']:.1%} |")
    if a.out:
        a.out.write_text(json.dumps({"runs": runs, "fidelity": fidelity, "warc_mb": warc_mb, "speedup": speed,
                                     "as_landed": landed},
                                    indent=2))


if __name__ == "__main__":
    main()
