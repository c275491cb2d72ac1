"""Compare fine-tuning settings on the case that chose FitConfig.finetune's defaults: the bundled MNIST model
fine-tuned on --size (1,000) drawings (drawers 1-15) of 67 Omniglot characters, scored on their 335 drawings by
drawers 16-20; or (--case cifar10-celeba) the bundled CIFAR-10 model on CelebA training faces averaged to 32 px,
scored on --test-images of the 600 test faces; or (--case omniglot-mnist) the bundled Omniglot model on MNIST
training images, scored on --test-images MNIST test images spread over the split.

    cd benchmarks && python sweep_finetune.py --data ../../shared/data '{}' '{"prior_steps": 0}' '{"parse_weight": 1}'
    cd benchmarks && python sweep_finetune.py '{}' '{"fit_prior": false}' --data ../../shared/data --size 10 --seeds 0 1 2
    cd benchmarks && python sweep_finetune.py '{"warmup_steps": 50}' --data ../../shared/data --case cifar10-celeba \
        --size 10 --samples 50

Each argument is a JSON object of FitConfig fields that change the defaults ("as is" scores the pretrained model
without fitting). Prints, per setting, the held-out bound (--samples importance samples; 10 ranks settings at a
fifth of the cost of the paper's 50), the FID in the model's default feature space between as many samples as test
images and the held-out images, their reconstructions' PSNR, the kept round and the fit's wall time; with several --seeds (each a different draw of the training
images, fit seed and sample seed), their means, and the FIDs one by one.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from bench_finetune import CASES, fit_size, target_data
from common import table

from np_draw import NPDraw
from np_draw.errors import run_main
from np_draw.metrics import default_features, fid, nll, reconstruction_psnr
from np_draw.training import FitConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="+", help="JSON objects of FitConfig fields, e.g. '{\"decoder_lr\": 1e-3}'")
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--size", type=int, default=1000, help="training drawings")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--case", choices=sorted(CASES), default="mnist-omniglot")
    parser.add_argument("--test-images", type=int, default=100,
                        help="test images of cifar10-celeba and omniglot-mnist (mnist-omniglot: its 335 drawings)")
    args = parser.parse_args()
    for setting in args.settings:  # checked before any fit: a typo in the last one would end the sweep late
        if setting == "as is":
            continue
        try:
            changes = json.loads(setting)
            if not isinstance(changes, dict):
                raise TypeError("not a JSON object")
            FitConfig.finetune().replace(**changes)
        except (ValueError, TypeError) as error:  # JSON's errors and FitConfig's checks (InvalidInputError)
            parser.error(f"setting {setting!r}: {error}")
    source, target = CASES[args.case]
    image_size = NPDraw.from_pretrained(source).config.image_size
    pool, test, _ = (fit_size(x, image_size) for x in target_data(target, args.data, 0, args.test_images))
    test = test.float() / 255
    grey = test.shape[1] == 1
    rows = []
    for setting in args.settings:
        runs = []
        for seed in args.seeds:
            images = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:args.size]]
            model = NPDraw.from_pretrained(source)
            start = time.perf_counter()
            kept = None
            if setting != "as is":
                kept = model.fit(images, seed=seed, progress=False, **json.loads(setting)).best_epoch
            seconds = time.perf_counter() - start
            samples = model.sample(len(test), generator=torch.Generator().manual_seed(seed), progress=False).images
            bound = nll(model, test, args.samples, seed=seed, progress=False)
            runs.append((bound.mean_nats if model.config.channels == 1 else bound.mean_bits_per_dim,
                         fid(samples, test, default_features(model), progress=False).value, kept, seconds,
                         reconstruction_psnr(model, test).mean().item()))
            print(setting, seed, runs[-1], flush=True)
        rows.append((setting, f"{sum(r[0] for r in runs) / len(runs):.{3 if grey else 4}f}", f"{sum(r[1] for r in runs) / len(runs):.2f}",
                     " / ".join(f"{r[1]:.1f}" for r in runs), " / ".join(str(r[2]) for r in runs),
                     f"{sum(r[3] for r in runs) / len(runs):.0f}", f"{sum(r[4] for r in runs) / len(runs):.2f}"))
    table(f"Fine-tuning settings, {args.case}, on {args.size} images, seeds {args.seeds} ({args.samples}-sample held-out bound, "
          f"{torch.get_num_threads()} threads)", rows,
          ("changes to FitConfig.finetune()", "NLL (nats)" if grey else "NLL (bits/dim)", "FID", "FIDs", "kept round", "fit (s)",
           "recon PSNR (dB)"))


if __name__ == "__main__":
    run_main(main, __file__)
