"""How much of a model's reconstruction error comes from its encoder's z_loc head.

    python scripts/location_heads.py --data ../shared/data
    python scripts/location_heads.py --data ../shared/data --models mnist --target omniglot

A parse puts step t's part in cell t (z_loc = t). The encoder predicts z_loc of step t from cell t's feature alone
(a 1x1-convolution head), so it can only tell which cell it is in from the image's content around it. For each
model this prints, on --images test images of --target spread over its test split (default: the model's own data,
500 images): the PSNR of
its reconstructions (posterior modes), the PSNR with the same ids and z_is but every drawn step placed in its own
cell, how often the most likely location is the step's own cell, and the mean posterior probability of that cell.
"""

from __future__ import annotations

import argparse

import torch

from np_draw import NPDraw
from np_draw.data import load_dataset
from np_draw.errors import run_main
from np_draw.metrics import psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--models", nargs="+", default=["mnist", "omniglot", "cifar10", "celeba"])
    parser.add_argument("--target", default=None, help="data set to score on (default: each model's own)")
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    print("| model | test images | recon PSNR (dB) | with each step in its own cell | loc mode = own cell | "
          "mean q(own cell) |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        model = NPDraw.from_pretrained(name).eval()
        target = args.target or name
        test = load_dataset(target, args.data, "test")
        x = (test[::max(1, len(test) // args.images)][:args.images].float() / 255).to(model.device)
        with torch.no_grad():
            z = model.encode(x)
            own = torch.arange(z.ids.shape[1], device=z.ids.device).expand_as(z.ids)
            placed = model.render(z.ids, own, z.present)
            drawn = z.present.bool()
            agree = (z.locs == own)[drawn].float().mean().item()
            q_own = z.logits.locs.softmax(-1).gather(-1, own[..., None])[..., 0][drawn].mean().item()
            print(f"| {name} | {target} ({len(x)}) | {psnr(model.decode(z), x).mean().item():.2f} | "
                  f"{psnr(model.decode(placed), x).mean().item():.2f} | {agree:.3f} | {q_own:.3f} |", flush=True)


if __name__ == "__main__":
    run_main(main, __file__)
