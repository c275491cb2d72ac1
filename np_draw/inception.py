"""Inception-v3 pool3 features as pytorch-fid computes them, from a local weights file (nothing is downloaded).

The network is torchvision's Inception-v3 with the changes of the TensorFlow FID graph that pytorch-fid
reproduces: average pools that do not count padding in the A, C and first E blocks, a max pool in the last E block's
pool branch, BatchNorm eps 0.001, inputs resized to 299x299 (bilinear) and scaled to [-1, 1]. It loads pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` (read with ``torch.load(weights_only=True)``, which rebuilds tensors only and
runs no code) or a safetensors copy of it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_file
from torch import nn

from .errors import CorruptWeightsError, MissingFileError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"


class BasicConv2d(nn.Sequential):
    """Convolution without bias, BatchNorm (eps 0.001), ReLU; parameter names as in torchvision."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU(inplace=True)


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = BasicConv2d(cin, 48, 1), BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, 2)], 1)


def _seven(cin: int, cout: int, vertical: bool) -> BasicConv2d:
    """A 7x1 (vertical) or 1x7 convolution that keeps the size."""
    return BasicConv2d(cin, cout, (7, 1) if vertical else (1, 7), padding=(3, 0) if vertical else (0, 3))


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1, self.branch7x7_2 = BasicConv2d(cin, c7, 1), _seven(c7, c7, False)
        self.branch7x7_3 = _seven(c7, 192, True)
        self.branch7x7dbl_1, self.branch7x7dbl_2 = BasicConv2d(cin, c7, 1), _seven(c7, c7, True)
        self.branch7x7dbl_3, self.branch7x7dbl_4 = _seven(c7, c7, False), _seven(c7, c7, True)
        self.branch7x7dbl_5 = _seven(c7, 192, False)
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([self.branch1x1(x), seven, double, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = BasicConv2d(cin, 192, 1), BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1, self.branch7x7x3_2 = BasicConv2d(cin, 192, 1), _seven(192, 192, False)
        self.branch7x7x3_3, self.branch7x7x3_4 = _seven(192, 192, True), BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    """The last blocks; ``max_pool`` selects the FID graph's max pool in the pool branch (the final block)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1, self.branch3x3dbl_2 = BasicConv2d(cin, 448, 1), BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a), self.branch3x3dbl_3a(b),
                          self.branch3x3dbl_3b(b), self.branch_pool(pooled)], 1)


class InceptionV3(nn.Module):
    """pytorch-fid's FID Inception-v3 up to the 2048-d pool3 features (its 1008-class head is not kept)."""

    name = "inception-v3"

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b, self.Mixed_6c = InceptionC(768, 128), InceptionC(768, 160)
        self.Mixed_6d, self.Mixed_6e = InceptionC(768, 160), InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b, self.Mixed_7c = InceptionE(1280, max_pool=False), InceptionE(2048, max_pool=True)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1 or 3, H, W) in [0, 1] -> (N, 2048) pool3 features; grey images are repeated to RGB."""
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        x = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
        x = F.max_pool2d(x, 3, 2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return rearrange(F.adaptive_avg_pool2d(x, 1), "n c 1 1 -> n c")


def default_weights_path() -> Path:
    """Where pytorch-fid's download lands: the torch hub cache's ``checkpoints`` folder."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def inception_v3(path: str | Path | None = None, *, device: torch.device | str = "cpu") -> InceptionV3:
    """The FID Inception-v3 with pytorch-fid's weights from a local file, in eval mode.

    Args:
        path: the weights: pytorch-fid's ``.pth`` or a ``.safetensors`` copy; None looks in the torch hub cache
            (:func:`default_weights_path`). A file named like the original (``...-6726825d.pth``) must have a
            sha256 starting with those hex digits, as torch hub checks.
        device: where to put the network.
    Returns:
        :class:`InceptionV3`; use it as ``features=`` of :func:`np_draw.metrics.fid` for an Inception FID.
    Raises:
        MissingFileError: no weights file. CorruptWeightsError (a ValueError): a hash mismatch, a file that is not
            a weights file, or tensors that do not fit the network.
    """
    path = Path(path).expanduser() if path is not None else default_weights_path()
    if not path.is_file():
        raise MissingFileError(f"no Inception-v3 FID weights at {path}: put pytorch-fid's {WEIGHTS_FILE} there or "
                                "pass its path (this package downloads nothing)")
    if expected := re.search(r"-([0-9a-f]{8,})\.pth$", path.name):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(expected.group(1)):
            raise CorruptWeightsError(f"{path}: sha256 {digest[:16]}... does not start with {expected.group(1)}, "
                                      "the hash in its name; the file is corrupted or not the original")
    safetensors = path.suffix == ".safetensors"
    try:
        state = load_file(path) if safetensors else torch.load(path, map_location="cpu", weights_only=True)
    # Whatever the reader raises on another kind of file (a picture, text, a pickle of other objects: pickle's
    # UnpicklingError, safetensors' SafetensorError, EOFError, RuntimeError), which would be a traceback otherwise
    except Exception as error:
        kind = "safetensors" if safetensors else "PyTorch"
        raise CorruptWeightsError(f"{path} is not a readable {kind} weights file (corrupted, truncated or another "
                                  f"kind of file; {type(error).__name__}): give pytorch-fid's {WEIGHTS_FILE} or a "
                                  "safetensors copy of it") from error
    if not isinstance(state, dict):  # a file torch.save wrote of one tensor, or of a list
        raise CorruptWeightsError(f"{path} holds a {type(state).__name__}, not the state dict of pytorch-fid's "
                                  "Inception-v3")
    network = InceptionV3()
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits.")) and
             not k.endswith("num_batches_tracked")}
    missing, unexpected = network.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CorruptWeightsError(f"{path} does not hold pytorch-fid's Inception-v3: missing {missing[:5]}, unexpected "
                                  f"{unexpected[:5]}")
    return network.to(device).eval()
