"""How much the JPEG copy of CIFAR-10 changes the NLL bound: the bundled (or given) model scored on the lossless test
images available here and on their JPEG copies from the JPEG test file.

    python scripts/cifar10_jpeg_effect.py --data ../shared/data [--model cifar10] [--write]

The 20 lossless images (``cifar10/test_first20_lossless.npz``, the original test[0:20]) are matched to their JPEG
copies in ``test_jpegbytes.npz`` (sorted by class, so in another order) by the smallest mean squared difference;
both sets get the 50-sample bound in bits per dimension with the same seed. ``--write`` records the two figures in
the weights manifest and the model card of the bundled cifar10 model, and names its test-split bound as measured on
JPEG images (``bundle_checkpoint.py`` records all three that way when it bundles a new one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from np_draw import NPDraw
from np_draw.data import load_dataset
from np_draw.errors import run_main
from np_draw.metrics import nll

LOSSLESS = "test_first20_lossless.npz"


def jpeg_effect(model: NPDraw, root: str | Path, num_samples: int = 50) -> dict[str, float]:
    """The bound (bits/dim) on the lossless test images and on their JPEG copies: the two metrics of the card."""
    folder = Path(root) / "cifar10" if (Path(root) / "cifar10").is_dir() else Path(root)
    lossless = torch.from_numpy(np.load(folder / LOSSLESS, allow_pickle=False)["images"])
    lossless = rearrange(lossless, "n h w c -> n c h w")
    jpeg = load_dataset("cifar10", root, "test")
    distance = ((lossless[:, None].float() - jpeg[None].float()) ** 2).flatten(2).mean(2)
    copies = jpeg[distance.argmin(1)]
    count = len(lossless)
    return {f"test_lossless{count}_nll_bits_per_dim_{num_samples}is":
            round(nll(model, lossless, num_samples, seed=0, progress=False).mean_bits_per_dim, 3),
            f"test_lossless{count}_jpeg_copies_nll_bits_per_dim_{num_samples}is":
            round(nll(model, copies, num_samples, seed=0, progress=False).mean_bits_per_dim, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the shared data folder (or its cifar10/ folder)")
    parser.add_argument("--model", default="cifar10", help="a model name or folder (default: the bundled cifar10)")
    parser.add_argument("--write", action="store_true", help="record the figures in the manifest and the card")
    args = parser.parse_args()
    figures = jpeg_effect(NPDraw.from_pretrained(args.model), args.data)
    print(json.dumps(figures, indent=2))
    if args.write:
        from bundle_checkpoint import record_metrics

        from np_draw.manifest import read_manifest

        # The split's bound was measured on JPEG images: its name says so, as bundle_checkpoint.py now writes it.
        old = [key for key in read_manifest()["cifar10"]["metrics"] if key.startswith("test_nll_")]
        figures.update({key.replace("test_nll_", "test_jpeg_nll_"): read_manifest()["cifar10"]["metrics"][key]
                        for key in old})
        record_metrics("cifar10", figures, drop=tuple(old))


if __name__ == "__main__":
    run_main(main, __file__)
