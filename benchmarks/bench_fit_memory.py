"""Peak memory of ``fit`` on a folder of 10,000 and of 100,000 images: streamed, it should not grow with the folder.

    cd benchmarks && python bench_fit_memory.py --data ../../shared/data [--sizes 10000 100000] [--work /tmp/fitmem]

Writes MNIST training images as PNG files into one folder per size (the 60,000 images, then their mirror images,
as many as needed), then for each folder runs, in a fresh process, ``NPDraw(mnist preset).fit(folder, ...)`` with
a short budget (20 prior and 20 VAE steps, checkpoints on) and reports the process's peak resident set, beside the
same fit on the images held in memory as one tensor. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from common import table
from PIL import Image

from np_draw.errors import run_main

CHILD = r"""
import json, resource, sys, time, logging
import torch
from np_draw import NPDraw, NPDrawConfig
from np_draw.images import load_folder_images
from np_draw.training import FitConfig
folder, how, out = sys.argv[1:4]
torch.manual_seed(0)
model = NPDraw(NPDrawConfig.preset("mnist", encoder_channels=64, decoder_channels=64))
config = FitConfig(prior_steps=20, steps=20, eval_every=10, batch_size=64)
start = time.perf_counter()
images = folder if how == "folder" else load_folder_images(folder, channels=1, size=28)
model.fit(images, config, output_dir=out, progress=False)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_folder(images: np.ndarray, count: int, folder: Path) -> None:
    """``count`` PNG files of 28x28 grey images: the images, then their mirror images."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) == count:
        return
    for i in range(count):
        image = images[i % len(images)]
        Image.fromarray(image if i < len(images) else image[:, ::-1]).save(folder / f"{i:06d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--work", default="/tmp/np_draw_fit_memory", help="where the image folders are written")
    parser.add_argument("--in-memory", action="store_true", help="also fit each folder loaded as one tensor")
    args = parser.parse_args()
    with np.load(Path(args.data) / "mnist" / "train.npz") as data:
        images = data["images"]
    rows = []
    for size in args.sizes:
        folder = Path(args.work) / str(size)
        write_folder(images, size, folder)
        for how in ["folder"] + (["tensor"] if args.in_memory else []):
            out = Path(args.work) / f"run-{size}-{how}"
            result = subprocess.run([sys.executable, "-c", CHILD, str(folder), how, str(out)], check=False,
                                    capture_output=True, text=True)
            if result.returncode:  # the child's own error, not a CalledProcessError that hides it
                raise SystemExit(f"the fit of {folder} ({how}) failed:\n{result.stderr[-3000:]}")
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append((f"{size:,}", "streamed from the folder" if how == "folder" else "loaded as one tensor",
                         f"{figures['peak_mib']:.0f}", f"{figures['seconds']:.0f}"))
            print(rows[-1], flush=True)
    table("fit on a folder: peak resident memory", rows,
          ("images", "how", "peak resident set (MiB)", "fit (s)"))


if __name__ == "__main__":
    run_main(main, __file__)
