"""The paper's ablation: parse PSNR on MNIST over part size K and bank size B.

    python benchmarks/bench_ablation.py --data ../shared/data/mnist [--sizes 3 4 5 6 7] [--banks 25 50 100 200]

For each K the grid covers the 28x28 canvas with non-overlapping cells (stride K, the least padding that fits).
Banks are fitted on the 60,000 training images; PSNR is the mean over the 10,000 test images. Prints a markdown table
(rows K, columns B) and writes the figures to a JSON file.
"""

from __future__ import annotations

import argparse
import math

import torch
from common import table, timed, write_json

from np_draw import NPDraw, NPDrawConfig
from np_draw.data import load_dataset
from np_draw.errors import run_main
from np_draw.metrics import parse_psnr


def grid_for(part_size: int, canvas: int = 28) -> dict:
    """Non-overlapping cells of side K covering the canvas: G = ceil(S / K) cells a side, padding (G·K − S) / 2."""
    side = math.ceil(canvas / part_size)
    extra = side * part_size - canvas
    if extra % 2:
        side += 1
        extra += part_size
    return {"part_size": part_size, "stride": part_size, "grid_size": side, "padding": extra // 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the MNIST folder (train.npz, test.npz)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 4, 5, 6, 7])
    parser.add_argument("--banks", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--out", default="bench_ablation.json")
    args = parser.parse_args()
    train = load_dataset("mnist", args.data, "train").float() / 255
    test = load_dataset("mnist", args.data, "test").float() / 255
    results: dict = {"threads": torch.get_num_threads(), "psnr_db": {}, "fit_s": {}}
    rows = []
    for size in args.sizes:
        row = [f"K={size} ({grid_for(size)['grid_size']}x{grid_for(size)['grid_size']} grid)"]
        for bank in args.banks:
            model = NPDraw(NPDrawConfig.preset("mnist", num_parts=bank, **grid_for(size)))
            seconds, _ = timed(lambda m=model: m.bank.fit(train, m.grid, empty_threshold=m.config.empty_threshold,
                                                           seed=0))
            value = parse_psnr(model, test).mean().item()
            results["psnr_db"][f"K{size}_B{bank}"], results["fit_s"][f"K{size}_B{bank}"] = value, seconds
            row.append(f"{value:.2f}")
            print(f"K={size} B={bank}: {value:.2f} dB, bank fit {seconds:.1f} s", flush=True)
        rows.append(row)
    table("Parse PSNR (dB) on the MNIST test set over part size K and bank size B", rows,
          ("part size", *[f"B={b}" for b in args.banks]))
    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
