"""Compare fine-tuning settings on the case that chose FitConfig.finetune's defaults: the bundled MNIST model
fine-tuned on --size (1,000) drawings (drawers 1-15) of 67 Omniglot characters, scored on their 335 drawings by
drawers 16-20.

    cd benchmarks && python sweep_finetune.py --data ../../shared/data '{}' '{"prior_steps": 0}' '{"parse_weight": 1}'
    cd benchmarks && python sweep_finetune.py '{}' '{"fit_prior": false}' --data ../../shared/data --size 10 --seeds 0 1 2

Each argument is a JSON object of FitConfig fields that change the defaults ("as is" scores the pretrained model
without fitting). Prints, per setting, the held-out bound (--samples importance samples; 10 ranks settings at a
fifth of the cost of the paper's 50), the FID in the cnn-mnist space between 335 samples and the held-out
drawings, their reconstructions' PSNR, the kept round and the fit's wall time; with several --seeds (each a different draw of the training
images, fit seed and sample seed), their means, and the FIDs one by one.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import table

from np_draw import NPDraw
from np_draw.data import omniglot_by_drawer
from np_draw.metrics import default_features, fid, nll, reconstruction_psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="JSON objects of FitConfig fields, e.g. '{\"decoder_lr\": 1e-3}'")
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--size", type=int, default=1000, help="training drawings")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    pool, test, _ = omniglot_by_drawer(args.data)
    test = test.float() / 255
    rows = []
    for setting in args.settings:
        runs = []
        for seed in args.seeds:
            images = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:args.size]]
            model = NPDraw.from_pretrained("mnist")
            start = time.perf_counter()
            kept = None
            if setting != "as is":
                kept = model.fit(images, seed=seed, progress=False, **json.loads(setting)).best_epoch
            seconds = time.perf_counter() - start
            samples = model.sample(len(test), generator=torch.Generator().manual_seed(seed), progress=False).images
            runs.append((nll(model, test, args.samples, seed=seed, progress=False).mean_nats,
                         fid(samples, test, default_features(model), progress=False).value, kept, seconds,
                         reconstruction_psnr(model, test).mean().item()))
            print(setting, seed, runs[-1], flush=True)
        rows.append((setting, f"{sum(r[0] for r in runs) / len(runs):.2f}", f"{sum(r[1] for r in runs) / len(runs):.2f}",
                     " / ".join(f"{r[1]:.1f}" for r in runs), " / ".join(str(r[2]) for r in runs),
                     f"{sum(r[3] for r in runs) / len(runs):.0f}", f"{sum(r[4] for r in runs) / len(runs):.2f}"))
    table(f"Fine-tuning settings on {args.size} drawings, seeds {args.seeds} ({args.samples}-sample held-out bound, "
          f"{torch.get_num_threads()} threads)", rows,
          ("changes to FitConfig.finetune()", "NLL (nats)", "FID-cnn-mnist", "FIDs", "kept round", "fit (s)",
           "recon PSNR (dB)"))


if __name__ == "__main__":
    main()
