"""Train one of the pretrained checkpoints with the project's own ``fit`` on the real data.

    python scripts/train_pretrained.py --name mnist --data ../shared/data --out runs/mnist

Logs to stdout (run it under nohup), checkpoints into OUT/checkpoints (``--resume`` continues exactly), and saves
the model folder with ``save_pretrained``, its training record and an 8x8 sample grid.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time

import torch

from np_draw import NPDraw, NPDrawConfig
from np_draw.data import load_dataset
from np_draw.training import FitConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, choices=["mnist", "omniglot", "cifar10", "celeba"])
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--channels", type=int, default=64, help="encoder and decoder widths (paper: 128)")
    parser.add_argument("--prior-epochs", type=int, default=2)
    parser.add_argument("--prior-lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in OUT/checkpoints")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.manual_seed(args.seed)

    images = load_dataset(args.name, args.data, "train", limit=args.limit).float() / 255
    config = NPDrawConfig.preset(args.name, encoder_channels=args.channels, decoder_channels=args.channels)
    model = NPDraw(config)
    fit_config = FitConfig(seed=args.seed, prior_epochs=args.prior_epochs, prior_lr=args.prior_lr,
                           epochs=args.epochs)
    start = time.time()
    history = fit(model, images, fit_config, output_dir=args.out, resume=args.resume, progress=False)
    wall = time.time() - start
    out = model.save_pretrained(args.out)
    record = dict(name=args.name, fit_config=fit_config.__dict__, seed=args.seed, wall_time_s=wall,
                  machine=f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
                  val_bound=history.val_bound, prior_val=history.prior_val, train=history.train)
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    samples = model.sample(64, generator=torch.Generator().manual_seed(0), progress=False)
    samples.save_grid(out / "samples.png", nrow=8)
    logging.info("done in %.0f s; validation bound %s", wall, history.val_bound)


if __name__ == "__main__":
    main()
