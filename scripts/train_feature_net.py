"""Train one of the feature networks that the project's offline FID uses (see np_draw/features.py).

    python scripts/train_feature_net.py --name cnn-mnist --data ../shared/data

Writes np_draw/weights/features/<name>.safetensors and <name>.json (the training record: data sha256, test accuracy,
epochs, seed, git commit, wall time), or into --out (a trial run that leaves the shipped network as it is).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from train_pretrained import git_commit, machine

from np_draw.data import data_files, load_dataset
from np_draw.errors import run_main
from np_draw.features import ARCHITECTURES, FEATURES_DIR, FeatureNetwork
from np_draw.manifest import sha256_file

logger = logging.getLogger(__name__)
DATASET = {"cnn-mnist": "mnist", "cnn-cifar10": "cifar10"}


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 2-pixel shifts (zero padded), and horizontal flips for RGB images, one draw per image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (2, 2, 2, 2))
    dy, dx = torch.randint(0, 5, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(-1, x.shape[1], -1, w + 4)
    x = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(-1, x.shape[1], h, -1)
    x = x.gather(3, cols)
    if x.shape[1] == 3:
        flip = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


@torch.no_grad()
def accuracy(network: FeatureNetwork, images: torch.Tensor, labels: torch.Tensor) -> float:
    network.eval()
    correct = sum((network(images[i:i + 1000]).argmax(1) == labels[i:i + 1000]).sum().item()
                  for i in range(0, len(images), 1000))
    return correct / len(images)


def labels_of(name: str, root: str, split: str) -> torch.Tensor:
    import numpy as np

    (file,) = data_files(name, root, split)
    return torch.from_numpy(np.load(file, allow_pickle=False)["labels"].astype("int64"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, choices=sorted(ARCHITECTURES))
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(FEATURES_DIR),
                        help="folder for <name>.safetensors and <name>.json (default: the package's, "
                             "np_draw/weights/features)")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    out = Path(args.out)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.manual_seed(args.seed)
    dataset = DATASET[args.name]
    train = load_dataset(dataset, args.data, "train").float() / 255
    test = load_dataset(dataset, args.data, "test").float() / 255
    train_labels, test_labels = labels_of(dataset, args.data, "train"), labels_of(dataset, args.data, "test")
    network = FeatureNetwork(args.name, **ARCHITECTURES[args.name])
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    steps = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for epoch in range(args.epochs):
        network.train()
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for i in range(0, len(train), args.batch_size):
            index = order[i:i + args.batch_size]
            loss = F.cross_entropy(network(augment(train[index], generator)), train_labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        logger.info("epoch %d: train loss %.4f, test accuracy %.4f", epoch + 1, total / len(train),
                    accuracy(network, test, test_labels))
    wall = time.time() - start
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, out / f"{args.name}.safetensors")
    record = {"config": network.config(), "test_accuracy": round(accuracy(network, test, test_labels), 4),
              "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
              "git_commit": git_commit(), "wall_time_s": round(wall, 1), "machine": machine(),
              "data_sha256": {f"{dataset}/{file.name}": sha256_file(file) for split in ("train", "test")
                              for file in data_files(dataset, args.data, split)}}
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    logger.info("%s: test accuracy %.4f in %.0f s", args.name, record["test_accuracy"], wall)


if __name__ == "__main__":
    run_main(main, __file__)
