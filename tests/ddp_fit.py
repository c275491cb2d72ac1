"""Run by tests/test_training.py, alone or under torchrun: a few steps of prior pretraining, weights saved."""

import sys

import numpy as np
import torch
import torch.distributed as dist

from np_draw import NPDraw, PriorConfig
from np_draw.training import FitConfig
from tests.conftest import tiny_config

images = torch.from_numpy(np.load("tests/fixtures/mnist_300.npz")["images"][:100]).float() / 255
torch.manual_seed(0)
model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=2, dropout=0.0)))
config = FitConfig(prior_epochs=2, prior_batch_size=30, prior_lr=1e-3, epochs=0, checkpoint_every=0)
history = model.fit(images, config, progress=False)
if not dist.is_initialized() or dist.get_rank() == 0:
    model.save_pretrained(sys.argv[1])
