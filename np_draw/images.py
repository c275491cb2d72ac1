"""Turning image tensors (float NCHW in [0, 1]) into PIL images and grids."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from einops import rearrange
from PIL import Image

from .errors import InvalidInputError


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (0..255) or float images -> float32 on the CPU in [0, 1] (floats are clamped)."""
    images = images.detach().cpu()
    return images.float() / 255 if images.dtype == torch.uint8 else images.float().clamp(0, 1)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, C, H, W) uint8 or float in [0, 1], C in (1, 3) -> N PIL images ("L" or "RGB")."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise InvalidInputError(f"images must be (N, C, H, W) with C in (1, 3), got shape {tuple(images.shape)}")
    pixels = (_unit(images) * 255).round().to(torch.uint8)
    pixels = rearrange(pixels, "n c h w -> n h w c").numpy()
    return [Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p) for p in pixels]


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> Image.Image:
    """Tile (N, C, H, W) images (uint8, or float in [0, 1]) into one PIL image, ``nrow`` per row (default: a
    square), separated by ``padding`` px of white."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = torch.ones(c, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    for i, image in enumerate(_unit(images)):
        top, left = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        canvas[:, top:top + h, left:left + w] = image
    return to_pil(canvas[None])[0]


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, padding: int = 2) -> Path:
    """Save :func:`make_grid` of ``images`` to ``path`` (format from the suffix); returns the path."""
    path = Path(path)
    make_grid(images, nrow, padding).save(path)
    return path


def save_pairs(images: torch.Tensor, results: torch.Tensor, path: str | Path, pairs_per_row: int | None = None) -> Path:
    """Save each image beside its result (a reconstruction, a parse canvas) as one grid picture.

    Args:
        images: (N, C, H, W) float in [0, 1].
        results: (N, C, h, w) float in [0, 1]; a smaller result (a canvas at half the image size) is scaled up to
            H x W by repeating pixels.
        path: the picture file (format from the suffix).
        pairs_per_row: pairs per row (default: about square).
    Returns:
        The path.
    """
    if images.ndim != 4 or results.shape[:2] != images.shape[:2]:
        raise InvalidInputError(f"images and results must be (N, C, H, W) with the same N and C, got shapes "
                                f"{tuple(images.shape)} and {tuple(results.shape)}")
    results = results.to(images.device, images.dtype)
    if results.shape[-2:] != images.shape[-2:]:
        results = torch.nn.functional.interpolate(results, size=images.shape[-2:], mode="nearest")
    pairs = rearrange(torch.stack([images, results], 1), "n two c h w -> (n two) c h w")
    return save_grid(pairs, path, 2 * (pairs_per_row or math.ceil(math.sqrt(len(images)))))
