"""Run by tests/test_training.py under torchrun: a run of 3 VAE epochs straight, and one of 1 extended to 3 by a
resume, each process drawing its own noise; then a fit with fewer training images than processes."""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from np_draw import NPDraw, PriorConfig
from np_draw.errors import InvalidInputError
from np_draw.training import FitConfig
from tests.conftest import tiny_config

out = Path(sys.argv[1])
images = torch.from_numpy(np.load("tests/fixtures/mnist_300.npz")["images"][:48]).float() / 255


def run(folder: str, epochs: int) -> NPDraw:
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1, dropout=0.0)))
    config = FitConfig(prior_epochs=1, prior_batch_size=16, epochs=epochs, batch_size=8, seed=3, checkpoint_every=0)
    model.fit(images, config, output_dir=out / folder, resume=True, progress=False)
    return model


straight = run("straight", 3)
run("extended", 1)
extended = run("extended", 3)
try:
    run("too-few", 1).fit(images[:1], FitConfig(prior_epochs=0, epochs=1), progress=False)
    refused = None
except InvalidInputError as error:
    refused = str(error)
if dist.get_rank() == 0:
    straight.save_pretrained(out / "straight-model")
    extended.save_pretrained(out / "extended-model")
    (out / "refused.json").write_text(json.dumps(refused))
