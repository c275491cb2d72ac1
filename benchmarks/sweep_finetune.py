"""Compare fine-tuning settings on the case that chose FitConfig.finetune's defaults: the bundled MNIST model
fine-tuned on 1,000 drawings (drawers 1-15) of 67 Omniglot characters, scored on their 335 drawings by drawers 16-20.

    cd benchmarks && python sweep_finetune.py --data ../../shared/data '{}' '{"prior_steps": 0}' '{"parse_weight": 1}'

Each argument is a JSON object of FitConfig fields that change the defaults. Prints, per setting, the held-out
bound (--samples importance samples; 10 ranks settings at a fifth of the cost of the paper's 50), the FID in the
cnn-mnist space between 335 samples and the held-out drawings, the kept round and the fit's wall time.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import table

from np_draw import NPDraw
from np_draw.data import omniglot_by_drawer
from np_draw.metrics import default_features, fid, nll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="JSON objects of FitConfig fields, e.g. '{\"decoder_lr\": 1e-3}'")
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pool, test, _ = omniglot_by_drawer(args.data, args.seed)
    test = test.float() / 255
    images = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(args.seed))[:1000]]
    rows = []
    for setting in args.settings:
        model = NPDraw.from_pretrained("mnist")
        start = time.perf_counter()
        history = model.fit(images, seed=args.seed, progress=False, **json.loads(setting))
        seconds = time.perf_counter() - start
        samples = model.sample(len(test), generator=torch.Generator().manual_seed(0), progress=False).images
        rows.append((setting, f"{nll(model, test, args.samples, progress=False).mean_nats:.2f}",
                     f"{fid(samples, test, default_features(model), progress=False).value:.2f}",
                     history.best_epoch, f"{seconds:.0f}"))
        print(rows[-1], flush=True)
    table(f"Fine-tuning settings ({args.samples}-sample held-out bound, {torch.get_num_threads()} threads)", rows,
          ("changes to FitConfig.finetune()", "NLL (nats)", "FID-cnn-mnist", "kept round", "fit (s)"))


if __name__ == "__main__":
    main()
