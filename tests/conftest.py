from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

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
