"""Which distributed engine: Dask and Ray running the same dedup tasks on this machine.

    benchmarks/.venv-ray/bin/python benchmarks/bench_engines.py --sigs SIGNATURE_PARTITION [--workers 2]

(`benchmarks/setup_envs.sh` makes .venv-ray: ray[data] 2.60.0 next to this project's core dependencies.)

Each engine, in a fresh process, starts a local cluster of `--workers` single-threaded workers, then fans
out the map side of the near-dedup candidate join (core/dedup/distributed.py) over a real crawl's
signatures: band keys per shard of 65,536 records, then candidate pairs per key range (64 ranges). Both
run the same functions on the same files and must find the same pairs. Reported: cluster start-up,
memory of the engine's processes when idle and at their peak, the phase's wall and CPU seconds
(every process of the engine, sampled; memory as PSS, so pages shared between processes, like Ray's object
store, count once). The later per-shard joins and exact checks use the same task pattern and are not
compared separately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
PINNED = {"RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


class Sampler:
    """Memory (PSS summed over the engine's processes) and CPU seconds of this process and every descendant."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.cpu: dict[int, float] = {}
        self.peak_pss = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def pss(self) -> int:
        total = 0
        for p in [self.me, *self.me.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
                t = p.cpu_times()
                self.cpu[p.pid] = t.user + t.system  # each process once: a reaped child keeps its last sample
            except psutil.Error:
                continue
        return total

    def _loop(self) -> None:
        while not self.stop_flag.wait(0.1):
            self.peak_pss = max(self.peak_pss, self.pss())

    def cpu_s(self) -> float:
        self.pss()
        return sum(self.cpu.values())

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join()


def child(engine: str, sig_uri: str, workers: int) -> dict:
    from seedcoder_assets.core.dedup import distributed as dist
    from seedcoder_assets.core.dedup.minhash import MinHashParams

    params = MinHashParams()
    cut = dist.units(sig_uri, 65_536)
    ranges = dist.key_ranges(64)
    work = tempfile.mkdtemp(prefix="bench_engines_")
    files = [f"{work}/unit-{u.number:06d}.parquet" for u in cut]
    sampler = Sampler()
    t0 = time.perf_counter()
    if engine == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)

        def fan_out(fn, args_list):
            return client.gather([client.submit(fn, *args, pure=False) for args in args_list])
    else:
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)

        def fan_out(fn, args_list):
            remote = ray.remote(num_cpus=1)(fn)
            return ray.get([remote.remote(*args) for args in args_list])
    fan_out(_warm, [(i,) for i in range(workers)])  # workers up and importing
    startup = time.perf_counter() - t0
    time.sleep(2)
    idle_pss = sampler.pss()
    cpu0, t1 = sampler.cpu_s(), time.perf_counter()
    fan_out(dist.write_unit_bands, [(sig_uri, u, f, params) for u, f in zip(cut, files)])
    found = fan_out(_pairs, [(lo, hi, files, params.max_bucket_pairs) for lo, hi in ranges])
    wall, cpu = time.perf_counter() - t1, sampler.cpu_s() - cpu0
    sampler.stop()
    out = {"engine": engine, "workers": workers, "records": sum(_rows(f) for f in files), "startup_s": startup,
           "idle_pss_mb": idle_pss / 2**20, "peak_pss_mb": sampler.peak_pss / 2**20, "phase_wall_s": wall,
           "phase_cpu_s": cpu, "pairs": int(sum(found))}
    if engine == "dask":
        client.close()
        cluster.close()
    else:
        ray.shutdown()
    return out


def _warm(i: int) -> int:
    from seedcoder_assets.core.dedup import distributed  # noqa: F401  (import cost counted in start-up)

    return i


def _pairs(lo, hi, files, max_bucket_pairs) -> int:
    from seedcoder_assets.core.dedup.distributed import range_candidates

    by_unit, _ = range_candidates(lo, hi, files, [], max_bucket_pairs)
    return sum(len(p) for p in by_unit.values())


def _rows(path: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sigs", required=True, help="a minhash_signatures partition")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.sigs, a.workers)))
        return
    rows = []
    for engine in ("dask", "ray"):
        out = subprocess.run([sys.executable, __file__, "--child", engine, "--sigs", a.sigs, "--workers", str(a.workers)],
                             env={**os.environ, **PINNED}, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    assert rows[0]["pairs"] == rows[1]["pairs"], "the engines found different pairs"
    print("\n| engine | workers | band entries | start-up s | idle PSS MB (all processes) | peak PSS MB | phase wall s | phase CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['workers']} | {r['records']:,} | {r['startup_s']:.1f} | {r['idle_pss_mb']:.0f} "
              f"| {r['peak_pss_mb']:.0f} | {r['phase_wall_s']:.1f} | {r['phase_cpu_s']:.1f} |")


if __name__ == "__main__":
    main()
