from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from np_draw import NPDraw, NPDrawConfig

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def mnist_images() -> torch.Tensor:
    """300 real MNIST test images, (300, 1, 28, 28) float in [0, 1]."""
    images = np.load(FIXTURES / "mnist_300.npz", allow_pickle=False)["images"]
    return torch.from_numpy(images).float() / 255


def tiny_config(name: str, **overrides) -> NPDrawConfig:
    """A preset with narrow networks, for fast tests."""
    return NPDrawConfig.preset(name, encoder_channels=16, decoder_channels=16, **overrides)


def random_model(name: str, seed: int = 0, **overrides) -> NPDraw:
    """A tiny model with random weights and a random (but valid) part bank, in eval mode."""
    torch.manual_seed(seed)
    model = NPDraw(tiny_config(name, **overrides))
    model.bank.parts.uniform_()
    return model.eval()


@pytest.fixture
def tracked_opens(tmp_path):
    """Four small image files (40 to 43 px wide), an ``open_image(path, crop=None)`` stand-in to patch in, and the
    list it fills: at each call, how many images it opened before are still alive. A reader that decodes one file at
    a time holds at most the one before while it opens the next."""
    files = []
    for i in range(4):
        Image.new("L", (40 + i, 40), 0).save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    opened, alive = [], []

    def open_image(path, crop=None):
        alive.append(sum(ref() is not None for ref in opened))
        image = Image.open(path)
        image.load()
        opened.append(weakref.ref(image))
        return image

    return files, open_image, alive
