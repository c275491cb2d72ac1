"""Where a sample's time goes, and how much one batch's time varies: the detail behind bench_sampling.py.

    cd benchmarks && python bench_sampling_detail.py [--models mnist celeba] [--batch 256] [--repeats 12]

For each bundled model: milliseconds per image of the prior's T steps (``Prior.sample``) and of the decoder
(``NPDraw.decode`` of the drawn canvases) on one thread, the fastest of three batches each; then images/s of
``--repeats`` single batches of ``NPDraw.sample`` on 2 threads, one after another, with their median, to show how much
a two-thread figure varies from batch to batch. Last, how well the prior's two pieces of a batch run at once (``NPDraw.sample`` draws a batch of 256 on 2 threads as
two pieces of 128, one per thread, each thread on its own): milliseconds of one piece's ``Prior.sample`` alone on one
thread, of two pieces at once on two threads of one process, and in two processes; a process has an interpreter
lock of its own, so the gap between the last two is what the threads lose waiting for each other's lock. Uses the
public API only, so it runs on earlier commits too (``PYTHONPATH=/path/to/old/checkout``). Prints markdown tables
and writes a JSON file.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from common import table, write_json

from np_draw import NPDraw
from np_draw.errors import run_main


def fastest(work, repeat: int = 3) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``work``, after one warm-up call."""
    work()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def phases(model: NPDraw, batch: int) -> dict[str, float]:
    """Milliseconds per image of the prior and of the decoder, on one thread."""
    torch.set_num_threads(1)
    prior, cfg = model.prior, model.config
    noise = torch.rand(batch, cfg.num_steps, cfg.num_parts + cfg.num_steps + 1,
                       generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        canvas = prior.sample(model.bank, noise).canvas
        return {"prior_ms": fastest(lambda: prior.sample(model.bank, noise)) / batch * 1e3,
                "decoder_ms": fastest(lambda: model.decode(canvas)) / batch * 1e3}


def single_batches(model: NPDraw, batch: int, repeats: int) -> list[float]:
    """Images/s of ``repeats`` single batches on 2 threads, after one warm-up batch."""
    torch.set_num_threads(2)
    model.sample(batch, torch.Generator().manual_seed(0), batch_size=batch, progress=False)
    rates = []
    for seed in range(repeats):
        start = time.perf_counter()
        model.sample(batch, torch.Generator().manual_seed(seed), batch_size=batch, progress=False)
        rates.append(batch / (time.perf_counter() - start))
    return rates


# One piece's prior alone in a process of its own, started at a given time.time() so that two of them run at once.
CHILD = """
import sys, time, torch
from np_draw import NPDraw
torch.set_num_threads(1)
name, piece, start, repeats = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
model = NPDraw.from_pretrained(name).eval()
cfg = model.config
noise = torch.rand(piece, cfg.num_steps, cfg.num_parts + cfg.num_steps + 1, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    model.prior.sample(model.bank, noise)
    time.sleep(max(0.0, start - time.time()))
    began = time.perf_counter()
    for _ in range(repeats):
        model.prior.sample(model.bank, noise)
print((time.perf_counter() - began) / repeats * 1e3)
"""


def in_processes(name: str, piece: int, count: int, repeats: int = 3) -> float:
    """Milliseconds of one piece's prior, the mean over ``count`` processes that run at once."""
    start = time.time() + 15  # after every child has imported torch and loaded the model
    children = [subprocess.Popen([sys.executable, "-c", CHILD, name, str(piece), str(start), str(repeats)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(count)]
    return statistics.mean(float(child.communicate()[0]) for child in children)


def in_threads(model: NPDraw, piece: int, repeats: int = 3) -> float:
    """Milliseconds of two pieces' priors drawn at once on two threads of this process, one thread each."""
    torch.set_num_threads(1)
    cfg = model.config
    noise = torch.rand(piece, cfg.num_steps, cfg.num_parts + cfg.num_steps + 1,
                       generator=torch.Generator().manual_seed(0))

    def draw(_: int) -> None:
        with torch.no_grad():  # grad mode is per thread
            model.prior.sample(model.bank, noise)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(draw, range(2)))
        began = time.perf_counter()
        for _ in range(repeats):
            list(pool.map(draw, range(2)))
    return (time.perf_counter() - began) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mnist", "celeba"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--out", default="bench_sampling_detail.json")
    args = parser.parse_args()
    results, phase_rows, spread_rows, pair_rows = {"batch": args.batch, "models": {}}, [], [], []
    piece = max(1, args.batch // 2)
    for name in args.models:
        model = NPDraw.from_pretrained(name).eval()
        split = phases(model, args.batch)
        rates = single_batches(model, args.batch, args.repeats)
        alone, threads, processes = in_processes(name, piece, 1), in_threads(model, piece), in_processes(name, piece, 2)
        results["models"][name] = {**split, "two_thread_batches_images_per_s": rates, "piece_alone_ms": alone,
                                   "two_pieces_threads_ms": threads, "two_pieces_processes_ms": processes}
        pair_rows.append((name, f"{alone:.1f}", f"{threads:.1f}", f"{2 * alone / threads:.2f}x", f"{processes:.1f}",
                          f"{2 * alone / processes:.2f}x"))
        phase_rows.append((name, f"{split['prior_ms']:.2f}", f"{split['decoder_ms']:.2f}"))
        spread_rows.append((name, f"{min(rates):.0f}", f"{statistics.median(rates):.0f}", f"{max(rates):.0f}",
                            " ".join(f"{rate:.0f}" for rate in rates)))
        print(phase_rows[-1], spread_rows[-1][:4], pair_rows[-1], flush=True)
    table(f"Milliseconds per image on one thread, batch {args.batch}", phase_rows, ("model", "prior", "decoder"))
    table(f"Images/s of {args.repeats} single batches of {args.batch} on 2 threads", spread_rows,
          ("model", "lowest", "median", "highest", "each"))
    table(f"The prior of two pieces of {piece} at once, milliseconds", pair_rows,
          ("model", "one piece alone", "two on two threads", "their speed-up", "two in two processes",
           "their speed-up"))
    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
