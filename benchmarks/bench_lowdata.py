"""The low-data curve: fit on 0.1 %, 1 %, 10 % and 100 % of the MNIST training images with about the same number of
optimizer steps, then report the NLL bound and the FID on the test set.

    python benchmarks/bench_lowdata.py --data ../shared/data/mnist [--fractions 0.001 0.01 0.1 1]

Every run fits the bank, pretrains the prior for at least --prior-steps steps (batch 64) and trains the encoder and
decoder for at least --vae-steps steps (batch 100) with --channels wide networks, in whole epochs, so the runs differ
mainly in the data they see; where one epoch is longer than the budget (the full data set) the run takes one epoch, and
the table gives the steps each run took. NLL: 50-sample
importance bound on the first --test-images test images; FID-cnn-mnist between as many samples and those images;
--grids saves 64 of the samples per fraction, the paper's low-data figure (supplement Fig. 3).
Prints a markdown table and writes the figures to a JSON file.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import torch
from common import table, write_json

from np_draw import NPDraw, NPDrawConfig
from np_draw.data import load_dataset
from np_draw.errors import run_main
from np_draw.images import save_grid
from np_draw.metrics import fid, nll
from np_draw.training import FitConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the MNIST folder")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0])
    parser.add_argument("--prior-steps", type=int, default=400)
    parser.add_argument("--vae-steps", type=int, default=300)
    parser.add_argument("--channels", type=int, default=32, help="encoder and decoder widths")
    parser.add_argument("--prior-lr", type=float, default=5e-4, help="the bundled MNIST model's")
    parser.add_argument("--decoder-lr", type=float, default=1e-3, help="the bundled MNIST model's")
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--grids", default=None, metavar="DIR",
                        help="also save an 8x8 sample grid per fraction, DIR/lowdata_<percent>.png")
    parser.add_argument("--out", default="bench_lowdata.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.grids is not None:  # made now: a missing folder would otherwise fail after the first fit
        Path(args.grids).mkdir(parents=True, exist_ok=True)
    train = load_dataset("mnist", args.data, "train").float() / 255
    test = (load_dataset("mnist", args.data, "test").float() / 255)[:args.test_images]
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    results: dict = {"threads": torch.get_num_threads(), "args": vars(args), "runs": {}}
    rows = []
    for fraction in args.fractions:
        count = max(2, round(fraction * len(train)))
        images = train[order[:count]]
        held = max(1, round(0.1 * count))
        batches = {"prior": min(64, count - held), "vae": min(100, count - held)}
        # Epochs that give about the same number of optimizer steps whatever the data size.
        epochs = {stage: max(1, math.ceil(steps * batches[stage] / (count - held)))
                  for stage, steps in (("prior", args.prior_steps), ("vae", args.vae_steps))}
        config = FitConfig(seed=0, prior_epochs=epochs["prior"], prior_batch_size=batches["prior"],
                           prior_lr=args.prior_lr, epochs=epochs["vae"], batch_size=batches["vae"],
                           decoder_lr=args.decoder_lr)
        torch.manual_seed(0)
        model = NPDraw(NPDrawConfig.preset("mnist", encoder_channels=args.channels, decoder_channels=args.channels))
        start = time.perf_counter()
        model.fit(images, config, progress=False)
        seconds = time.perf_counter() - start
        bound = nll(model, test, 50, seed=0, progress=False).mean_nats
        samples = model.sample(len(test), torch.Generator().manual_seed(0), progress=False).images
        distance = fid(samples, test, "cnn-mnist", progress=False)
        if args.grids is not None:
            save_grid(samples[:64], Path(args.grids) / f"lowdata_{100 * fraction:g}.png", nrow=8)
        steps = {stage: epochs[stage] * math.ceil((count - held) / batches[stage]) for stage in epochs}
        results["runs"][str(fraction)] = {"images": count, "prior_epochs": epochs["prior"], "epochs": epochs["vae"],
                                          "prior_steps": steps["prior"], "vae_steps": steps["vae"], "nll_nats": bound,
                                          distance.label: distance.value, "fit_s": seconds}
        rows.append([f"{100 * fraction:g} %", f"{count:,}", f"{steps['prior']} / {steps['vae']}", f"{bound:.2f}",
                     f"{distance.value:.2f}", f"{seconds:.0f}"])
        print(rows[-1], flush=True)
    table(f"Low-data curve on MNIST (at least {args.prior_steps} prior + {args.vae_steps} VAE steps each, width "
          f"{args.channels}, prior lr {args.prior_lr:g}, decoder lr {args.decoder_lr:g}; test = first "
          f"{args.test_images} images)", rows,
          ("training data", "images", "prior / VAE steps", "NLL bound (nats, 50 IS)", "FID-cnn-mnist", "fit (s)"))
    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
