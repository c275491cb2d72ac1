"""Sampling throughput of the bundled models by batch size and thread count, against this machine's FLOP bound,
and its slowdown when another process keeps one core busy.

    cd benchmarks && python bench_sampling.py [--models mnist omniglot cifar10 celeba] [--batches 1 16 256]

For each model and batch: images/s of ``NPDraw.sample`` on 1 and 2 threads (nothing else running), the FLOPs of a
sample (counted by torch's FlopCounterMode: the prior's cached steps and the decoder), the achieved fraction of the
bound (the rate of a large fp32 matrix product on as many threads), and images/s on 2 threads while a second
process spins a pure-Python loop on one core, with the slowdown against quiet. Prints a markdown table and writes
a JSON file.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time

import torch
from common import table, write_json
from torch.utils.flop_counter import FlopCounterMode

from np_draw import NPDraw
from np_draw.errors import run_main

BUSY = "while True: pass"


def rate(model: NPDraw, batch: int, threads: int, seconds: float) -> float:
    """Images per second over at least ``seconds`` of whole batches, after one warm-up batch."""
    torch.set_num_threads(threads)
    model.sample(batch, torch.Generator().manual_seed(0), batch_size=batch, progress=False)
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < seconds:
        model.sample(batch, torch.Generator().manual_seed(count), batch_size=batch, progress=False)
        count += batch
    return count / (time.perf_counter() - start)


def flops_per_image(model: NPDraw, batch: int = 16) -> float:
    """FLOPs of one sample, counted on a batch that one thread draws (the counter sees only its own thread's work;
    a sample costs the same in any batch)."""
    with FlopCounterMode(display=False) as counter:
        model.sample(batch, torch.Generator().manual_seed(0), batch_size=batch, progress=False)
    return counter.get_total_flops() / batch


def matmul_gflops(threads: int, size: int = 1024, repeat: int = 20) -> float:
    """The fp32 matrix-product rate on ``threads`` threads: the bound sampling is measured against."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * size**3 * repeat / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mnist", "omniglot", "cifar10", "celeba"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per figure")
    parser.add_argument("--out", default="bench_sampling.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bound = {threads: matmul_gflops(threads) for threads in (1, 2)}
    results: dict = {"torch": torch.__version__, "matmul_gflops": bound, "models": {}}
    rows = []
    for name in args.models:
        model = NPDraw.from_pretrained(name)
        results["models"][name] = {}
        flops = flops_per_image(model)
        for batch in args.batches:
            quiet = {threads: rate(model, batch, threads, args.seconds) for threads in (1, 2)}
            busy = subprocess.Popen([sys.executable, "-c", BUSY])
            try:
                time.sleep(0.5)
                shared = rate(model, batch, 2, args.seconds)
            finally:
                busy.kill()
                busy.wait()
            fraction = {t: quiet[t] * flops / 1e9 / bound[t] for t in (1, 2)}
            results["models"][name][batch] = {"images_per_s": quiet, "busy_core_images_per_s": shared,
                                              "gflop_per_image": flops / 1e9, "bound_fraction": fraction}
            rows.append((name, batch, f"{quiet[1]:.1f}", f"{quiet[2]:.1f}", f"{flops / 1e6:.0f}",
                         f"{fraction[2]:.0%}", f"{shared:.1f}", f"{quiet[2] / shared:.2f}x"))
            print(rows[-1], flush=True)
    table(f"Sampling (CPU; fp32 matmul bound {bound[1]:.0f} GFLOP/s on 1 thread, {bound[2]:.0f} on 2)", rows,
          ("model", "batch", "images/s, 1 thread", "images/s, 2 threads", "MFLOP per image",
           "of the bound (2 threads)", "images/s, 2 threads, one core busy", "slowdown"))
    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
