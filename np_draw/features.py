"""Feature networks for the Fréchet distance (FID): small classifiers the project trains itself, and Inception-v3
from a local pytorch-fid weights file.

Offline machines cannot download the Inception-v3 weights that define the usual FID, so the package ships two
classifiers of its own, trained by ``scripts/train_feature_net.py``: ``cnn-mnist`` (grey 28x28, for MNIST and
Omniglot) and ``cnn-cifar10`` (RGB 32x32, for CIFAR-10 and, resized, CelebA). A distance computed with them is
labelled with the network's name ("FID-cnn-mnist") and is not comparable with published Inception FIDs.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import reduce
from safetensors.torch import load_file
from torch import nn

from .errors import MissingFileError, UnknownModelError

FEATURES_DIR = Path(__file__).parent / "weights" / "features"


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2))


class FeatureNetwork(nn.Module):
    """A small VGG-style classifier whose penultimate activations are the FID features.

    Args:
        name: the registry name, e.g. "cnn-mnist"; the FID it gives is labelled ``"FID-" + name``.
        channels: input channels the network was trained on (1 or 3); other inputs are converted.
        size: input side in pixels; other sizes are resized bilinearly.
        widths: the convolution widths of the blocks (each block halves the side).
        num_features: the feature dimension.
        num_classes: the classifier's classes (its head is used only in training).
    """

    def __init__(self, name: str, channels: int, size: int, widths: tuple[int, ...], num_features: int,
                 num_classes: int = 10) -> None:
        super().__init__()
        self.name, self.channels, self.size = name, channels, size
        self.widths, self.num_features, self.num_classes = tuple(widths), num_features, num_classes
        sides = (channels, *widths)
        self.blocks = nn.Sequential(*(_block(cin, cout) for cin, cout in itertools.pairwise(sides)))
        self.embed = nn.Sequential(nn.Linear(sides[-1], num_features), nn.ReLU(inplace=True))
        self.head = nn.Linear(num_features, num_classes)

    @property
    def label(self) -> str:
        """What a Fréchet distance in this network's features is called, e.g. "FID-cnn-mnist"."""
        return f"FID-{self.name}"

    def config(self) -> dict:
        """The constructor arguments, JSON-serialisable."""
        return {"name": self.name, "channels": self.channels, "size": self.size, "widths": list(self.widths),
                "num_features": self.num_features, "num_classes": self.num_classes}

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> the network's input (N, channels, size, size) in [-1, 1]: grey images are
        repeated to RGB, RGB images averaged to grey, other sizes resized bilinearly (antialiased when shrinking)."""
        if images.shape[1] != self.channels:
            images = images.expand(-1, 3, -1, -1) if self.channels == 3 else images.mean(1, keepdim=True)
        if images.shape[-1] != self.size or images.shape[-2] != self.size:
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                   antialias=images.shape[-1] > self.size)
        return 2 * images - 1

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, num_features) penultimate activations."""
        return self.embed(reduce(self.blocks(self.prepare(images)), "n c h w -> n c", "mean"))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, num_classes) class logits (for training)."""
        return self.head(self.features(images))


# The architectures of the shipped networks; their weights are in FEATURES_DIR/<name>.safetensors.
ARCHITECTURES: dict[str, dict] = {
    "cnn-mnist": {"channels": 1, "size": 28, "widths": (32, 64), "num_features": 128},
    "cnn-cifar10": {"channels": 3, "size": 32, "widths": (32, 64, 128), "num_features": 256},
}


def feature_network(name: str, *, device: torch.device | str = "cpu") -> FeatureNetwork:
    """The shipped feature network ``name`` with its trained weights, in eval mode.

    Args:
        name: one of :data:`ARCHITECTURES` ("cnn-mnist", "cnn-cifar10").
        device: where to put it.
    Returns:
        The network; its record (training data sha256, test accuracy) is in ``network.record``.
    Raises:
        ValueError: an unknown name. MissingFileError: the weights are not in the installed package.
    """
    if name not in ARCHITECTURES:
        raise UnknownModelError(f"unknown feature network {name!r}; known ones are {sorted(ARCHITECTURES)} "
                                "(for Inception-v3, pass features=np_draw.inception.inception_v3(weights_path))")
    weights = FEATURES_DIR / f"{name}.safetensors"
    if not weights.is_file():
        raise MissingFileError(f"the weights of feature network {name!r} are missing: {weights}; train them with "
                                "scripts/train_feature_net.py")
    network = FeatureNetwork(name, **ARCHITECTURES[name])
    network.load_state_dict(load_file(weights))
    record = weights.with_suffix(".json")
    network.record = json.loads(record.read_text()) if record.is_file() else {}
    return network.to(device).eval()
