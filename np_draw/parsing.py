"""The heuristic parser (spec §3): each non-empty grid cell is drawn with its nearest part (rendered by
:meth:`np_draw.NPDraw.render`)."""

from __future__ import annotations

import torch
from einops import rearrange

from .bank import PartBank, nearest
from .canvas import Grid
from .latents import Latents

# Parsing a large set runs this many images at a time to bound memory.
_PARSE_BATCH = 8192


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
    # In float32 whatever the images' dtype: in bfloat16 the distances ||c||^2 - 2 x.c (8 bits of mantissa) picked
    # a part that is not the nearest for about 1 drawn MNIST cell in 250 (spec §3: the nearest part, L2).
    dtype = torch.promote_types(canvas_images.dtype, torch.float32)
    parts = rearrange(bank.parts, "b c h w -> b (c h w)").to(canvas_images.device, dtype)
    for start in range(0, n, _PARSE_BATCH):
        patches = rearrange(grid.patches(canvas_images[start:start + _PARSE_BATCH].to(dtype)),
                            "n l c h w -> (n l) (c h w)")
        index, _ = nearest(patches, parts)
        drawn = patches.mean(1) >= empty_threshold
        ids[start:start + _PARSE_BATCH] = rearrange(index * drawn, "(n l) -> n l", l=num_cells)
        present[start:start + _PARSE_BATCH] = rearrange(drawn.float(), "(n l) -> n l", l=num_cells)
    steps = torch.arange(num_cells, device=canvas_images.device)
    locs = (steps * present.long()).expand(n, -1).contiguous()
    return Latents(ids, locs, present)
