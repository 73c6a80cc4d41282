"""What a first run compiles: the seconds Numba spends on each kernel of a recipe's first training step, from an
empty cache (a fresh ``NUMBA_CACHE_DIR``), then the same step again from the cache it filled.

    python -m benchmarks.compile_times [--recipe tutorial|fashion_bn] [--out DIR]

Each run is its own process. Compile times come from Numba's event API (``numba:compile``): a kernel's time
includes the helpers it compiles inside it (shown indented below it). Prints a table, writes ``compile_times.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from benchmarks.common import machine_info, markdown_table, write_json

WORKER = r"""
import collections, json, sys, time
from numba.core import event
import numpy as np
times, stack = collections.defaultdict(float), []

class Clock(event.Listener):
    def on_start(self, ev):
        f = ev.data["dispatcher"].py_func
        stack.append((time.perf_counter(), f"{f.__module__.rsplit('.', 1)[-1]}.{f.__qualname__}"))

    def on_end(self, ev):
        t0, name = stack.pop()
        times[(name, len(stack))] += time.perf_counter() - t0

event.register("numba:compile", Clock())
from minicnn.recipes import build_model, get_recipe
model = build_model(sys.argv[1], seed=0, backend="numba")
rng = np.random.default_rng(0)
x = rng.random((128,) + tuple(model.input_shape), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]
t0 = time.perf_counter()
model.train_step(model.prepare_inputs(x), model.prepare_targets(y, 128))
step = time.perf_counter() - t0
print("RESULT " + json.dumps({"first_step_s": step, "kernels": [[n, d, s] for (n, d), s in times.items()]}))
"""


def run(recipe, cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    proc = subprocess.run([sys.executable, "-c", WORKER, recipe], capture_output=True, text=True, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"the worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="tutorial", choices=["tutorial", "fashion_bn"])
    parser.add_argument("--out", default=os.path.join("benchmark-results", "compile_times"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as cache:
        cold = run(args.recipe, cache)
        warm = run(args.recipe, cache)
    total = sum(s for _, depth, s in cold["kernels"] if depth == 0)
    rows = [
        {"kernel": "  " * depth + name, "compile_s": s, "share": s / total if depth == 0 else None}
        for name, depth, s in sorted(cold["kernels"], key=lambda k: -k[2])
    ]
    write_json(
        os.path.join(args.out, "compile_times.json"),
        {"machine": machine_info(), "recipe": args.recipe, "empty_cache": cold, "from_cache": warm},
    )
    print(
        f"first training step of {args.recipe}: {cold['first_step_s']:.1f} s with an empty cache "
        f"({total:.1f} s compiling), {warm['first_step_s']:.2f} s from the cache "
        f"({sum(s for _, d, s in warm['kernels'] if d == 0):.2f} s compiling)"
    )
    print(markdown_table(rows, ["kernel", "compile_s", "share"]))
    print(f"\nwrote {args.out}/compile_times.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
