"""Encoder q(z | x) and decoder p(x | canvas) (spec §6)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .config import NPDrawConfig
from .latents import StepLogits


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype of the autocast block for ``device_type`` ("cpu", "cuda") the caller is in, else None."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


# The CPU instructions that run each half-precision dtype's products at speed, as Linux names them (x86, then Arm)
_HALF_INSTRUCTIONS = {torch.bfloat16: ("AVX512-BF16 or AMX", {"avx512_bf16", "amx_bf16", "bf16"}),
                      torch.float16: ("AVX512-FP16 or AMX-FP16", {"avx512_fp16", "amx_fp16", "asimdhp"})}


@functools.cache
def _cpu_flags() -> frozenset[str] | None:
    """The instruction sets this machine's CPU lists (/proc/cpuinfo), or None where it is not known."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = {flag for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features")
             for flag in line.split(":", 1)[1].split()}
    return frozenset(flags) or None


def slow_on_cpu(dtype: torch.dtype) -> str | None:
    """Why ``dtype`` runs many times slower than float32 on this machine's CPU, for a warning; None for float32 and
    float64, and for a half precision the CPU has instructions for (with them, it runs at float32's speed or
    faster)."""
    if dtype not in _HALF_INSTRUCTIONS:
        return None
    names, flags = _HALF_INSTRUCTIONS[dtype]
    known = _cpu_flags()
    if known is not None and known & flags:
        return None
    other = "; bfloat16 runs at speed on more CPUs" if dtype == torch.float16 else ""
    if known is None:
        return f"a CPU without {names} instructions runs it many times slower than float32{other}"
    return f"this CPU has no {names} instructions, so it runs many times slower than float32{other}"


class Overlapping:
    """Settings that blocks running at once share (two threads sampling one model): the first block to hold a key
    keeps the value it found, every block is handed that value, and the last to let go gets it back to restore.
    Call ``hold`` and ``release`` with ``lock`` held. A process forked while a block ran starts with nothing held:
    that block does not go on (nor end) in the copy, whose lock may have been copied held."""

    def __init__(self) -> None:
        self._forget()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._held: dict[Hashable, list] = {}
        self.lock = threading.Lock()

    def hold(self, found: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Hold each key; the value each key's first holder found."""
        for key, value in found.items():
            self._held.setdefault(key, [0, value])[0] += 1
        return {key: self._held[key][1] for key in found}

    def release(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        """Let go of ``keys``; the found values of those that no block holds any more."""
        last = {}
        for key in keys:
            held = self._held[key]
            held[0] -= 1
            if not held[0]:
                del self._held[key]
                last[key] = held[1]
        return last


# Modules inside evaluating blocks, by id (held, so never reused meanwhile), and their modes when the first began
_MODES = Overlapping()


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode inside the block, and every submodule back in its own mode after it, even on an
    error. A model already in eval mode is not touched (``eval()`` walks every submodule: a millisecond a call).

    Blocks that overlap on a module (two threads sampling one model) share the mode the first found, and the last
    to end hands it back: the first to end put a training model back in training mode while the other still drew
    (its BatchNorm then used batch statistics and changed its running ones), and the last left it in eval mode."""
    children = {id(child): child for child in module.modules()}
    with _MODES.lock:
        _MODES.hold({key: child.training for key, child in children.items()})
        if any(child.training for child in children.values()):
            module.eval()
    try:
        yield module
    finally:
        with _MODES.lock:
            for key, training in _MODES.release(children).items():
                children[key].training = training


class ConvBlock(nn.Sequential):
    """Convolution (or transposed convolution) without bias, BatchNorm, ReLU. In eval mode BatchNorm is folded into
    the convolution's weights and bias (computed at each call, so they follow any change to the weights): the same
    function to float rounding, without a pass over the activations, which at CelebA's 64 x 64 took a third of the
    decoder's time on a CPU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, transposed: bool = False) -> None:
        padding = (kernel - stride + 1) // 2 if not transposed else (kernel - stride) // 2
        layer = (nn.ConvTranspose2d if transposed else nn.Conv2d)(cin, cout, kernel, stride, padding, bias=False)
        super().__init__(layer, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, cout, H', W')."""
        conv, norm, _ = self
        if self.training or norm.training:
            return super().forward(x)
        scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
        bias = norm.bias - norm.running_mean * scale
        if isinstance(conv, nn.ConvTranspose2d):  # weight (cin, cout, k, k)
            y = F.conv_transpose2d(x, conv.weight * scale[:, None, None], bias, conv.stride, conv.padding,
                                   conv.output_padding)
        else:  # weight (cout, cin, k, k)
            y = F.conv2d(x, conv.weight * scale[:, None, None, None], bias, conv.stride, conv.padding)
        return F.relu(y, inplace=True)


def _head(width: int, out: int) -> nn.Sequential:
    """An MLP applied to each grid cell's feature (1x1 convolutions)."""
    return nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, out, 1))


class Encoder(nn.Module):
    """q(z | x): four conv layers (BatchNorm + ReLU), the feature map pooled to the √T x √T grid, and three MLP
    heads giving step t's logits from cell t (paper). A 64 px image is first halved by a strided first layer.

    The z_loc logits also get a learned bias per step and location, ``location_bias`` (T, L): the heads read each
    cell's feature alone, so without it the encoder can tell which cell a step is in (where every parse places its
    part) only from the image's content, which a new domain changes (scripts/location_heads.py)."""

    def __init__(self, config: NPDrawConfig) -> None:
        super().__init__()
        width = config.encoder_channels
        self.grid_size = config.grid_size
        self.features = nn.Sequential(
            ConvBlock(config.channels, width, 3, config.upscale),
            ConvBlock(width, width, 4, 2),
            ConvBlock(width, width, 3, 1),
            ConvBlock(width, width, 4, 2),
        )
        self.ids = _head(width, config.num_parts)
        self.locs = _head(width, config.num_steps)
        self.present = _head(width, 1)
        self.location_bias = nn.Parameter(torch.zeros(config.num_steps, config.num_steps))

    def forward(self, images: torch.Tensor) -> StepLogits:
        """(N, C, H, W) in [0, 1] -> StepLogits with ids (N, T, B), locs (N, T, L), present (N, T)."""
        h = F.adaptive_avg_pool2d(self.features(2 * images - 1), self.grid_size)
        cells = "n k gh gw -> n (gh gw) k"
        return StepLogits(rearrange(self.ids(h), cells), rearrange(self.locs(h), cells) + self.location_bias,
                          rearrange(self.present(h), cells)[..., 0])


class Decoder(nn.Module):
    """p(x | canvas): two stride-2 convs, two stride-1 convs, two transposed convs (BatchNorm + ReLU), one more
    transposed conv when the image is twice the canvas (CelebA), and a 1x1 conv to the likelihood's parameters.
    The input is the canvas only, so an edited canvas decodes as well as an inferred one."""

    def __init__(self, config: NPDrawConfig, num_params: int) -> None:
        super().__init__()
        width = config.decoder_channels
        layers = [
            ConvBlock(config.channels, width, 3, 2),
            ConvBlock(width, width, 3, 2),
            ConvBlock(width, width, 3, 1),
            ConvBlock(width, width, 3, 1),
            ConvBlock(width, width, 4, 2, transposed=True),
            ConvBlock(width, width, 4, 2, transposed=True),
        ]
        if config.upscale == 2:
            layers.append(ConvBlock(width, width, 4, 2, transposed=True))
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(width, num_params, 1)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) canvas in [0, 1] -> (N, P, H, W) likelihood parameters, contiguous (NCHW)."""
        features = self.body(2 * canvas - 1)
        if torch.is_grad_enabled():
            # Training: the product's gradient would reach the channels-last features contiguous, and a ReLU's and
            # a BatchNorm's backward over mixed layouts ran 5-10x slower (the ReLUs' backward was a sixth of the
            # decoder's step); the convolution keeps the body's layout, and only the parameters are copied plane by
            # plane.
            return self.out(features).contiguous()
        n, _, h, w = features.shape
        # The 1x1 output layer as one matrix product per image that writes the parameters plane by plane, reading
        # the body's channels-last features transposed: as fast as the convolution, and the likelihood's
        # elementwise work then runs over whole planes (on channels-last parameters a mixture's ran over each
        # pixel's few values, 3x slower with its layout copy). ``out`` keeps the weights; here its forward (and any
        # hook on it) is not called.
        params = torch.baddbmm(self.out.bias[None, :, None], self.out.weight.flatten(1).expand(n, -1, -1),
                               features.flatten(2))
        return params.view(n, self.out.out_channels, h, w)
