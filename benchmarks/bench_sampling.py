"""Sampling throughput against batch size, with the prior's key/value cache and without it, and peak memory.

    python benchmarks/bench_sampling.py [--models mnist omniglot cifar10 celeba] [--batches 1 16 256]

Each model is a pretrained name or a folder; names not available yet are reported and skipped. Prints a markdown
table and writes the figures to a JSON file.
"""

from __future__ import annotations

import argparse
import logging

import torch
from common import peak_memory_mib, table, timed, write_json

from np_draw import NPDraw
from np_draw.hub import WeightsUnavailableError

logger = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist", "omniglot", "cifar10", "celeba"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-images", type=int, default=256, help="images timed per setting (at least a batch)")
    parser.add_argument("--out", default="bench_sampling.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__, "device": args.device,
                     "models": {}}
    rows = []
    for name in args.models:
        try:
            model = NPDraw.from_pretrained(name, device=args.device)
        except WeightsUnavailableError as error:
            logger.warning("skipping %s: %s", name, error)
            results["models"][name] = {"skipped": str(error)}
            continue
        figures = {}
        for batch in args.batches:
            count = max(batch, args.min_images // batch * batch)
            for cache in (True, False):
                def run(n: int = count, b: int = batch, c: bool = cache, m: NPDraw = model) -> None:
                    m.sample(n, torch.Generator().manual_seed(0), batch_size=b, progress=False, use_cache=c)

                run(batch, batch, cache)  # warm-up: one batch
                seconds, _ = timed(run)
                memory = peak_memory_mib(lambda b=batch, c=cache: run(b, b, c), args.device)
                figures[f"batch{batch}_{'cache' if cache else 'nocache'}"] = {
                    "images_per_s": count / seconds, "peak_mib": memory}
                rows.append([name, batch, "yes" if cache else "no", f"{count / seconds:.1f}", f"{memory:.0f}"])
        results["models"][name] = figures
    table(f"Sampling throughput ({args.device}, {torch.get_num_threads()} threads)", rows,
          ("model", "batch", "KV cache", "images/s", "peak memory of one batch (MiB)"))
    write_json(args.out, results)


if __name__ == "__main__":
    main()
