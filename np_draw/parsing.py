"""The heuristic parser (spec §3): each non-empty grid cell is drawn with its nearest part."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from .bank import PartBank, nearest
from .canvas import Grid, compose
from .latents import Latents

# Parsing a large set runs this many images at a time to bound memory.
_PARSE_BATCH = 8192
# Rendering holds one canvas per step, T times the output: a smaller batch.
_RENDER_BATCH = 1024


def parse(canvas_images: torch.Tensor, bank: PartBank, grid: Grid, *, empty_threshold: float = 0.01) -> Latents:
    """Parse images into latent sequences.

    Args:
        canvas_images: (N, C, S, S) float in [0, 1] at canvas resolution S = grid.canvas_size.
        bank: the parts, (B, C, K, K) with K = grid.part_size.
        grid: the cells.
        empty_threshold: ε; a cell whose patch mean is below it is not drawn.
    Returns:
        A :class:`Latents` (no canvas, no logits) on the images' device.
    """
    n = canvas_images.shape[0]
    num_cells = grid.num_cells
    ids = torch.zeros(n, num_cells, dtype=torch.long, device=canvas_images.device)
    present = torch.zeros(n, num_cells, device=canvas_images.device)
    parts = rearrange(bank.parts, "b c h w -> b (c h w)").to(canvas_images)
    for start in range(0, n, _PARSE_BATCH):
        patches = rearrange(grid.patches(canvas_images[start:start + _PARSE_BATCH]), "n l c h w -> (n l) (c h w)")
        index, _ = nearest(patches, parts)
        drawn = patches.mean(1) >= empty_threshold
        ids[start:start + _PARSE_BATCH] = rearrange(index * drawn, "(n l) -> n l", l=num_cells)
        present[start:start + _PARSE_BATCH] = rearrange(drawn.float(), "(n l) -> n l", l=num_cells)
    steps = torch.arange(num_cells, device=canvas_images.device)
    locs = (steps * present.long()).expand(n, -1).contiguous()
    return Latents(ids, locs, present)


def render(latents: Latents, bank: PartBank, grid: Grid) -> torch.Tensor:
    """Paste parsed parts on a blank canvas: -> (N, C, S, S) in [0, 1]."""
    chunks = []
    for start in range(0, len(latents), _RENDER_BATCH):
        part = latents[start:start + _RENDER_BATCH]
        placed = grid.place(bank.lookup(part.ids), F.one_hot(part.locs, grid.num_cells).to(bank.parts))
        chunks.append(compose(placed, part.present.to(bank.parts)))
    return torch.cat(chunks)


def psnr(reconstruction: torch.Tensor, target: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, 20·log10(MAX) − 10·log10(MSE): (N, ...) and (N, ...) -> (N,)."""
    mse = ((reconstruction - target) ** 2).flatten(1).mean(1)
    return 20 * torch.log10(torch.tensor(max_value)) - 10 * torch.log10(mse.clamp_min(1e-10))
