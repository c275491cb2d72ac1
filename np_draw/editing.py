"""Editing drawings, beyond the authors' code: pasting a region of one drawing onto another, and interpolating.

The decoder sees only the canvas, so a drawing can be edited where it is explicit: in its latents (which part is
pasted in which grid cell) or on its canvas, and then decoded (the paper's face-editing figure: hair or glasses of
one face on another). A region is a set of grid cells or a pixel box on the canvas:

- ``cells``: grid cell indices (row-major, 0..L-1, L = T) or a boolean (L,) tensor;
- ``box``: ``(left, top, right, bottom)`` in canvas pixels, right and bottom exclusive (PIL's crop box); on the
  latents it selects the cells that have more than half of their on-canvas pixels inside it.

Conditional completion (the prior finishing a drawing from its first steps) is :meth:`NPDraw.complete`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from .canvas import Grid
from .errors import InvalidInputError, InvalidTypeError
from .latents import Latents, StepLogits
from .model import NPDraw, check_model, render

Cells = Iterable[int] | torch.Tensor | None
Box = tuple[int, int, int, int] | None


def _check_grid(grid: Any) -> None:
    """The canvas-only operations take the model's grid, not the model (an AttributeError before)."""
    if not isinstance(grid, Grid):
        raise InvalidTypeError(f"grid must be a Grid (model.grid), got {type(grid).__name__}")


def _footprints(grid: Grid) -> torch.Tensor:
    """(L, S, S) in {0, 1}: the on-canvas pixels of every cell."""
    return grid.box(torch.eye(grid.num_cells)[None], torch.ones(1, grid.num_cells))[0, :, 0]


def _box_mask(grid: Grid, box: tuple[int, int, int, int]) -> torch.Tensor:
    size = grid.canvas_size
    if (not isinstance(box, (tuple, list)) or len(box) != 4
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in box)):
        raise InvalidInputError(f"box must be (left, top, right, bottom) ints in canvas pixels, got {box!r}")
    left, top, right, bottom = map(int, box)
    if not (0 <= left < right <= size and 0 <= top < bottom <= size):
        raise InvalidInputError(f"box must satisfy 0 <= left < right <= {size} and 0 <= top < bottom <= {size} "
                                f"(canvas pixels, right/bottom exclusive), got {tuple(box)}")
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def region_cells(grid: Grid, *, cells: Cells = None, box: Box = None) -> torch.Tensor:
    """The grid cells of a region, given as ``cells`` or as a pixel ``box`` (exactly one of them).

    Args:
        grid: the canvas's cells.
        cells: cell indices in [0, L) (an iterable of ints or an int tensor) or a boolean (L,) tensor.
        box: (left, top, right, bottom) canvas pixels; a cell is in it when more than half of its on-canvas pixels
            are.
    Returns:
        (L,) bool on the CPU.
    """
    _check_grid(grid)
    if (cells is None) == (box is None):
        raise InvalidInputError("give the region as exactly one of cells= or box=")
    if box is not None:
        footprints = _footprints(grid)
        inside = (footprints * _box_mask(grid, box)).sum((1, 2))
        return inside * 2 > footprints.sum((1, 2))
    if isinstance(cells, torch.Tensor):
        chosen = cells.cpu()
    else:
        try:  # as given: bools stay a mask, floats stay floats (refused below), not cast to indices
            values = list(cells)
            chosen = torch.as_tensor(np.asarray(values)) if values else torch.zeros(0, dtype=torch.long)
        except (TypeError, ValueError) as error:
            raise InvalidTypeError(f"cells must be cell indices (ints) or a boolean mask, got {cells!r}") from error
        if 0 < sum(isinstance(v, (bool, np.bool_)) for v in values) < len(values):  # NumPy made them all ints
            raise InvalidInputError(f"cells must be cell indices or a boolean mask, not both, got {cells!r}")
    if chosen.dtype == torch.bool:
        if chosen.shape != (grid.num_cells,):
            raise InvalidInputError(f"a boolean cells mask must have shape ({grid.num_cells},), "
                                    f"got {tuple(chosen.shape)}")
        return chosen
    if chosen.ndim != 1 or chosen.is_floating_point() or chosen.is_complex() or \
            ((chosen < 0) | (chosen >= grid.num_cells)).any():
        raise InvalidInputError(f"cells must be ints in [0, {grid.num_cells}) or a boolean mask, got {cells!r}")
    return torch.zeros(grid.num_cells, dtype=torch.bool).index_fill_(0, chosen.long(), True)


def region_pixels(grid: Grid, *, cells: Cells = None, box: Box = None) -> torch.Tensor:
    """The canvas pixels of a region: the box itself, or the union of the cells' boxes. Returns (S, S) bool."""
    if box is not None and cells is None:
        _check_grid(grid)
        return _box_mask(grid, box)
    chosen = region_cells(grid, cells=cells, box=box)  # checks the grid before _footprints uses it
    return _footprints(grid)[chosen].any(0)


def paste_canvas(grid: Grid, target: torch.Tensor, source: torch.Tensor, *, cells: Cells = None,
                 box: Box = None) -> torch.Tensor:
    """Copy the region's pixels of ``source`` canvases onto ``target`` canvases; decode the result to see it.

    Args:
        grid: the canvas's cells (``model.grid``).
        target, source: (N, C, S, S) canvases in [0, 1] (e.g. ``latents.canvas``).
        cells, box: the region (see the module's docstring).
    Returns:
        (N, C, S, S): ``source`` inside :func:`region_pixels`, ``target`` elsewhere.
    Raises:
        ValueError: a region of no canvas pixel (``cells=[]``, an all-False mask), which would give ``target`` back.
    """
    _check_grid(grid)
    if not isinstance(target, torch.Tensor) or not isinstance(source, torch.Tensor):
        raise InvalidTypeError(f"target and source must be canvas tensors (e.g. latents.canvas), got "
                               f"{type(target).__name__} and {type(source).__name__}")
    if target.shape != source.shape or target.ndim != 4 or target.shape[-2:] != (grid.canvas_size,) * 2:
        raise InvalidInputError(f"target and source must be canvases of one shape (N, C, {grid.canvas_size}, "
                                f"{grid.canvas_size}), got {tuple(target.shape)} and {tuple(source.shape)}")
    # A uint8 canvas (0..255) pasted beside a [0, 1] one decodes as solid ink; one on another device was torch's error
    if not (target.is_floating_point() and source.is_floating_point()) or target.device != source.device:
        raise InvalidInputError(f"target and source must be floating canvases in [0, 1] on one device, got "
                                f"{target.dtype} on {target.device} and {source.dtype} on {source.device}")
    pixels = region_pixels(grid, cells=cells, box=box)
    if not pixels.any():  # as in paste_latents: a paste of nothing gives the target back, not what a caller asks for
        raise InvalidInputError(f"the region covers no canvas pixel (cells={cells!r}, box={box!r}): give at least "
                                "one cell on the canvas")
    return torch.where(pixels.to(target.device), source, target)


def paste_latents(model: NPDraw, target: Latents, source: Latents, *, cells: Cells = None,
                  box: Box = None) -> Latents:
    """Replace the steps of ``target`` drawn in the region by the steps of ``source`` drawn there.

    Step t of the result is source's step t when that step is drawn in the region, else target's step t when that
    one is drawn outside the region, else not drawn (z_is = 0). The canvas depends only on which parts are drawn
    where, not on their order; when a drawing's steps do not follow the grid order (a prior sample may draw cell 30
    at step 8), both rules can claim one step t, and target's step then moves to the first step that neither uses.
    For parses and encoder outputs (step t draws cell t) no step moves, and with a grid whose cells tile the canvas
    (stride = part size) the canvas of the result equals :func:`paste_canvas` of the two canvases over the cells.

    Args:
        model: the model the latents belong to (its bank and grid render the result).
        target, source: Latents of N drawings each, T steps.
        cells, box: the region (see the module's docstring).
    Returns:
        Latents (N, T) with their canvas (N, C, S, S) in [0, 1]; no logits. Decode with ``model.decode``.
    Raises:
        ValueError: different N or T, or a drawing with more than T drawn steps after the paste (the message says
        how many parts to remove).
    """
    check_model(model)
    if not isinstance(target, Latents) or not isinstance(source, Latents):
        raise InvalidTypeError(f"target and source must be Latents, got {type(target).__name__} and "
                               f"{type(source).__name__}")
    for latents, name in ((target, "target"), (source, "source")):
        steps = latents.check(num_parts=model.config.num_parts, num_steps=model.config.num_steps, name=name)
        if steps != model.config.num_steps:  # a shorter drawing (another model's) was pasted with this model's parts
            raise InvalidInputError(f"{name} must have the model's T={model.config.num_steps} steps, got {steps} "
                                    "(latents of another model?)")
    if target.ids.shape != source.ids.shape:
        raise InvalidInputError(f"target and source must have the same (N, T), got {tuple(target.ids.shape)} and "
                                f"{tuple(source.ids.shape)}")
    region = region_cells(model.grid, cells=cells, box=box).to(target.ids.device)
    if not region.any():  # a paste of nothing gives the target back: not what a caller asks for
        raise InvalidInputError(f"the region selects no cell (cells={cells!r}, box={box!r}); a box takes the cells "
                                "with more than half of their on-canvas pixels inside it")
    source = source.to(target.ids.device)
    # int64 to index the region: uint8 locs would index it as a mask, int8 and int16 not at all
    taken = source.present.bool() & region[source.locs.long()]
    kept = target.present.bool() & ~region[target.locs.long()]
    # Each drawn step of both needs a step of its own: a prior sample often draws several parts in one cell
    needed, steps = taken.sum(1) + kept.sum(1), taken.shape[1]
    if (needed > steps).any():
        n = int((needed > steps).nonzero()[0, 0])
        pasted, own = int(taken[n].sum()), int(kept[n].sum())
        raise InvalidInputError(f"drawing {n}: the source draws {pasted} parts in the region and the target {own} "
                                f"outside it, more than its T={steps} steps hold: paste a smaller region, or remove "
                                f"{pasted + own - steps} of the target's parts outside it first")
    ids = torch.where(taken, source.ids, target.ids)
    locs = torch.where(taken, source.locs, target.locs)
    for n, step in (taken & kept).nonzero().tolist():
        free = (~(taken[n] | kept[n])).nonzero()[:, 0]
        ids[n, free[0]], locs[n, free[0]] = target.ids[n, step], target.locs[n, step]
        kept[n, free[0]] = True
        kept[n, step] = False
    present = (taken | kept).to(target.present.dtype)
    return Latents(ids, locs, present, canvas=render(model.bank, model.grid, ids, locs, present))


def interpolate(model: NPDraw, first: torch.Tensor, second: torch.Tensor, num: int = 8, *,
                method: str = "logits") -> torch.Tensor:
    """Images between two images, through the model's discrete latents.

    The latents are discrete, so "between" needs a definition; two are offered:

    - ``"logits"``: the encoder's logits of the two images are mixed linearly, (1 − a)·q₁ + a·q₂ for a from 0 to
      1 per step and per variable, and each mixture's most likely latents are drawn and decoded. Parts switch one
      by one, where the mixed evidence tips (sometimes to a part neither image used).
    - ``"swap"``: a wipe in grid order: the first round(a·L) cells (row-major) of the second image's canvas are
      pasted onto the first's (:func:`paste_canvas`) and decoded. Pasting canvases rather than latents
      (:func:`paste_latents`, the same canvas when the grid's cells tile it) never runs out of steps: two encodings
      that draw every step, as faces do, would need more than T steps between them.

    Either way a = 0 and a = 1 give exactly the latents of ``model.encode`` of the two images, so the endpoints
    are ``model.reconstruct`` of them.

    Args:
        model: the model.
        first, second: one image each, (C, H, W), (H, W, C), (1, C, H, W), (1, H, W, C) or a grey (H, W), uint8
            or float in [0, 1]; or a PIL image.
        num: images in the sequence, endpoints included (>= 2).
        method: "logits" or "swap".
    Returns:
        (num, C, H, W) float in [0, 1].
    """
    check_model(model)
    if method not in ("logits", "swap"):
        raise InvalidInputError(f"method must be 'logits' or 'swap', got {method!r}")
    if isinstance(num, bool) or not isinstance(num, numbers.Integral) or num < 2:
        raise InvalidInputError(f"num must be an int >= 2 (the endpoints are included), got {num!r}")
    num = int(num)
    cfg = model.config

    def one(x: Any, name: str) -> torch.Tensor:
        given, ndim = getattr(x, "shape", None), getattr(x, "ndim", 0)
        # One image made a batch of one, channels first or last as prepare_images reads batches: an (H, W, C) image
        # (a row of an NHWC array, as .npz files hold them) was read as C grey images of H x W, and refused
        if ndim == 3 and cfg.channels in (x.shape[0], x.shape[-1]):
            x = x[None]
        elif ndim == 2:
            x = x[None, None]
        images = model.prepare_images(x, name)
        if len(images) != 1:
            raise InvalidInputError(f"{name} must be one image, got {len(images)} (shape {tuple(given or ())})")
        return images

    a, b = (model.encode(one(x, name)) for x, name in ((first, "first"), (second, "second")))
    weights = torch.linspace(0, 1, num)
    if method == "logits":
        def mix(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.lerp(x, y, weights.to(x).view(num, *[1] * (x.ndim - 1)))

        mixed = StepLogits(mix(a.logits.ids, b.logits.ids), mix(a.logits.locs, b.logits.locs),
                           mix(a.logits.present, b.logits.present))
        return model.decode(render(model.bank, model.grid, *mixed.mode()))
    # a = 0 pastes no cell: the first canvas itself (paste_canvas refuses an empty region)
    canvases = [paste_canvas(model.grid, a.canvas, b.canvas, cells=range(count)) if count else a.canvas
                for count in (round(w * cfg.num_steps) for w in weights.tolist())]
    return model.decode(torch.cat(canvases))
