"""Where a sample's time goes, and how much one batch's time varies: the detail behind bench_sampling.py.

    cd benchmarks && python bench_sampling_detail.py [--models mnist celeba] [--batch 256] [--repeats 12]

For each bundled model: milliseconds per image of the prior's T steps (``Prior.sample``) and of the decoder
(``NPDraw.decode`` of the drawn canvases) on one thread, the fastest of three batches each; then images/s of
``--repeats`` single batches of ``NPDraw.sample`` on 2 threads, one after another, with their median, to show how much
a two-thread figure varies from batch to batch. Uses the public API only, so it runs on earlier commits too
(``PYTHONPATH=/path/to/old/checkout``). Prints markdown tables and writes a JSON file.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import table, write_json

from np_draw import NPDraw


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist", "celeba"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--out", default="bench_sampling_detail.json")
    args = parser.parse_args()
    results, phase_rows, spread_rows = {"batch": args.batch, "models": {}}, [], []
    for name in args.models:
        model = NPDraw.from_pretrained(name).eval()
        split = phases(model, args.batch)
        rates = single_batches(model, args.batch, args.repeats)
        results["models"][name] = {**split, "two_thread_batches_images_per_s": rates}
        phase_rows.append((name, f"{split['prior_ms']:.2f}", f"{split['decoder_ms']:.2f}"))
        spread_rows.append((name, f"{min(rates):.0f}", f"{statistics.median(rates):.0f}", f"{max(rates):.0f}",
                            " ".join(f"{rate:.0f}" for rate in rates)))
    table(f"Milliseconds per image on one thread, batch {args.batch}", phase_rows, ("model", "prior", "decoder"))
    table(f"Images/s of {args.repeats} single batches of {args.batch} on 2 threads", spread_rows,
          ("model", "lowest", "median", "highest", "each"))
    write_json(args.out, results)


if __name__ == "__main__":
    main()
