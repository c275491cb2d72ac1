"""Sample 64 digits from the bundled MNIST model; save them, and the part canvases they were decoded from, as grids.

    python examples/sample.py                 # writes example_outputs/mnist_samples.png and mnist_canvases.png
    python examples/sample.py --out my_folder --seed 3 --temperature 0.8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from np_draw import NPDraw
from np_draw.images import save_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_outputs"), help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--temperature", type=float, default=1.0, help="prior temperature; below 1: more typical")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    model = NPDraw.from_pretrained("mnist")  # bundled with the package: no network needed
    out = model.sample(64, generator=torch.Generator().manual_seed(args.seed), temperature=args.temperature,
                       progress=False)
    samples = out.save_grid(args.out / "mnist_samples.png", nrow=8)
    canvases = save_grid(out.latents.canvas, args.out / "mnist_canvases.png", nrow=8)
    parts = out.latents.present.sum(1).mean().item()
    print(f"wrote {samples} and {canvases}; the prior drew {parts:.1f} parts per image")


if __name__ == "__main__":
    main()
