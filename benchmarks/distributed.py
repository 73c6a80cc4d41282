"""Data-parallel training on MPI: throughput and scaling of the tutorial for 1..N ranks x threads per rank.

    python -m benchmarks.distributed [--ranks 1,2] [--threads 1,2] [--steps 40] [--out DIR]

Each configuration runs in its own job (``mpiexec -n R``, NUMBA_NUM_THREADS=T in every rank; one rank runs plain
``train_step`` with no MPI at all, the baseline). The global batch is the tutorial's 128 whatever R is. A job warms
up (3 steps), then times ``--steps`` training steps and as many validation batches, and reports:

- ms per step and images/s (128 / step time); seconds per epoch extrapolated to the tutorial's 375 steps + 94
  validation batches;
- the allreduce's share of a step (its time inside the steps, which includes waiting for the slowest rank);
- the allreduce alone, timed back to back after a barrier (latency + bytes / bandwidth for 744,440 bytes), the
  figure docs/distributed.md's scaling model starts from;
- scaling efficiency: images/s over R times the one-rank images/s at the same threads per rank.

Prints a markdown table, writes ``distributed.json`` and ``distributed.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import bar_chart, machine_info, markdown_table, write_json

BATCH, TRAIN_STEPS, VAL_BATCHES = 128, 375, 94


def _timed_allreduce(strategy):
    """Wrap the strategy's allreduce so that the seconds spent in it add up in ``.seconds``."""
    inner = strategy.allreduce

    def allreduce(data):
        started = time.perf_counter()
        inner(data)
        allreduce.seconds += time.perf_counter() - started

    allreduce.seconds = 0.0
    strategy.allreduce = allreduce
    return allreduce


def worker(steps: int) -> dict:
    """One job's rank: time ``steps`` training steps and validation batches of the tutorial (global batch 128)."""
    from benchmarks.train import load_data
    from minicnn.distributed import get_strategy
    from minicnn.train import tutorial_model
    from minicnn.training import evaluate_arrays

    strategy = get_strategy()
    n_train = (steps + 3) * BATCH
    x, y, xv, yv, source = load_data(n_train, steps * BATCH)
    model = tutorial_model(seed=0, backend="numba")
    if strategy is not None:
        strategy.use_backend(model.backend)
        strategy.begin_fit(model, n_train, BATCH, 0)
        timer = _timed_allreduce(strategy)
    xb, yb = model.prepare_inputs(x), model.prepare_targets(y, len(x))
    xvb, yvb = model.prepare_inputs(xv), model.prepare_targets(yv, len(xv))
    model.start_epoch(0)

    def train(first, count):  # fit's inner loop: gather the batch (this rank's shard of it), one step
        for s in range(first, first + count):
            idx = np.arange(s * BATCH, (s + 1) * BATCH)
            if strategy is not None:
                idx = strategy.shard(model, idx)
            model.train_step(xb[idx], yb[idx], distributed=strategy)

    train(0, 3)
    if strategy is not None:
        strategy.comm.Barrier()
        timer.seconds = 0.0
    started = time.perf_counter()
    train(3, steps)
    step_s = (time.perf_counter() - started) / steps
    started = time.perf_counter()
    (evaluate_arrays if strategy is None else strategy.evaluate)(model, xvb, yvb, BATCH)
    val_batch_s = (time.perf_counter() - started) / steps
    result = {
        "ranks": 1 if strategy is None else strategy.size,
        "root": strategy is None or strategy.is_root,
        "source": source,
        "step_ms": step_s * 1e3,
        "images_per_s": BATCH / step_s,
        "epoch_s": TRAIN_STEPS * step_s + VAL_BATCHES * val_batch_s,
        "allreduce_share": 0.0,
        "allreduce_alone_us": 0.0,
        "allreduce_mib_s": 0.0,
    }
    if strategy is not None:
        result["allreduce_share"] = timer.seconds / steps / step_s
        result.update(_allreduce_alone(strategy, model))
    return result


def _allreduce_alone(strategy, model, repeat: int = 50) -> dict:
    """The allreduce of a buffer the size of the tutorial's gradients (+ 2), back to back after a barrier."""
    data = np.zeros(sum(g.size for g in model.gradients) + 2, dtype=np.float32)
    strategy.comm.Barrier()
    started = time.perf_counter()
    for _ in range(repeat):
        strategy.comm.Allreduce(strategy.MPI.IN_PLACE, data, op=strategy.MPI.SUM)
    seconds = (time.perf_counter() - started) / repeat
    return {
        "allreduce_alone_us": seconds * 1e6,
        "allreduce_bytes": data.nbytes,
        "allreduce_mib_s": data.nbytes / seconds / 2**20,
    }


def run_config(ranks: int, threads: int, steps: int, timeout: int) -> dict:
    """One job: ``mpiexec -n ranks`` (plain python for one rank) with ``threads`` Numba threads in each rank."""
    command = [sys.executable, "-m", "benchmarks.distributed", "--worker", "--steps", str(steps)]
    if ranks > 1:
        command = ["mpiexec", "-n", str(ranks), *command]
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{ranks} ranks x {threads} threads failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return {**json.loads(lines[-1]), "threads": threads}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", default="1,2", help="comma-separated rank counts (1,2)")
    parser.add_argument("--threads", default="1,2", help="comma-separated Numba threads per rank (1,2)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps (and validation batches)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one configuration may take")
    parser.add_argument("--out", default=os.environ.get("OUT") or "benchmark-results")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(args.steps)
        if result.pop("root"):
            print(json.dumps(result), flush=True)
        return 0
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for ranks in [int(r) for r in args.ranks.split(",")]:
            print(f"{ranks} rank(s) x {threads} thread(s) ...", flush=True)
            rows.append(run_config(ranks, threads, args.steps, args.timeout))
    for row in rows:
        base = next(r for r in rows if r["ranks"] == 1 and r["threads"] == row["threads"])
        row["efficiency"] = row["images_per_s"] / (row["ranks"] * base["images_per_s"])
        row["config"] = f"{row['ranks']} x {row['threads']}"
    columns = [
        "config",
        "step_ms",
        "images_per_s",
        "epoch_s",
        "allreduce_share",
        "allreduce_alone_us",
        "allreduce_mib_s",
        "efficiency",
    ]
    table = markdown_table(rows, columns)
    print(f"\nranks x threads per rank, global batch {BATCH}, {args.steps} timed steps ({rows[0]['source']})\n")
    print(table)
    os.makedirs(args.out, exist_ok=True)
    write_json(
        os.path.join(args.out, "distributed.json"),
        {"machine": machine_info(), "steps": args.steps, "batch": BATCH, "rows": rows, "table": table},
    )
    bar_chart(
        os.path.join(args.out, "distributed.png"),
        [r["config"] + " (ranks x threads)" for r in rows],
        [r["images_per_s"] for r in rows],
        "minicnn data-parallel training (tutorial, batch 128)",
        "images/s",
        log=False,  # the configurations differ by less than 2x: bars from zero compare honestly
    )
    print(f"\nwrote {args.out}/distributed.json, distributed.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
