"""Canvas composition (spec §4): pasting parts on a grid of cells and composing them by elementwise max.

A part is a (C, K, K) patch. Location l is grid cell l: its top-left pixel is (row·stride − padding,
col·stride − padding), so the grid may reach past the canvas, and whatever falls off is clipped. Pasting is
``torch.nn.functional.fold`` of a one-hot location, which is exact for hard locations and lets gradients reach a
straight-through location sample and soft part weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from .errors import InvalidInputError


@dataclass(frozen=True)
class Grid:
    """The cells of a canvas: ``canvas_size`` px square, cells of ``part_size`` px every ``stride`` px."""

    canvas_size: int
    part_size: int
    stride: int
    padding: int

    @property
    def side(self) -> int:
        """Cells per row (and per column)."""
        return (self.canvas_size + 2 * self.padding - self.part_size) // self.stride + 1

    @property
    def num_cells(self) -> int:
        """L = T, the number of cells."""
        return self.side**2

    def _fold_args(self) -> dict:
        return {"kernel_size": self.part_size, "stride": self.stride, "padding": self.padding}

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        """Cut the patch under every cell.

        Args:
            images: (N, C, S, S) with S = canvas_size.
        Returns:
            (N, L, C, K, K), zeros where a cell reaches past the canvas.
        """
        cols = F.unfold(images, **self._fold_args())
        return rearrange(cols, "n (c h w) l -> n l c h w", c=images.shape[1], h=self.part_size)

    def place(self, parts: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """Place one part per step on its own blank canvas.

        Args:
            parts: (N, T, C, K, K) part pixels of each step.
            locations: (N, T, L) one-hot (or straight-through one-hot) location of each step.
        Returns:
            (N, T, C, S, S): step t's part at its location, clipped at the border.
        """
        n, t = parts.shape[:2]
        if self.stride == self.part_size:
            # Cells tile the padded canvas: a broadcast product and a reshape, far cheaper than fold's backward.
            cells = parts[:, :, None] * locations[..., None, None, None]
            padded = rearrange(cells, "n t (gh gw) c h w -> n t c (gh h) (gw w)", gh=self.side)
            return self._cut(padded)
        blocks = torch.einsum("ntk,ntl->ntkl", rearrange(parts, "n t c h w -> n t (c h w)"), locations)
        canvases = F.fold(rearrange(blocks, "n t k l -> (n t) k l"), output_size=self.canvas_size,
                          **self._fold_args())
        return rearrange(canvases, "(n t) c h w -> n t c h w", n=n, t=t)

    def place_tiled(self, parts: torch.Tensor, locations: torch.Tensor, tile: int) -> torch.Tensor:
        """:meth:`place` in the tiled layout of :meth:`tile_index`: (N, T, C, K, K) parts and (N, T, L) one-hot (or
        straight-through) locations -> (N, T, tiles + 1, C * tile * tile), the same values as :meth:`place`'s
        canvases cut into tiles, and the same gradients, without the canvases' two layout copies forward and back."""
        n, t, c = parts.shape[:3]
        cells = (parts.flatten(2)[:, :, None] * locations[..., None]).flatten(2)  # (N, T, L * C * K * K)
        index = self.tile_index(c, tile, parts.device).flatten().expand(n, t, -1)
        return cells.new_zeros(n, t, (self._tile_side(tile) ** 2 + 1) * c * tile**2).scatter_add(2, index, cells) \
            .unflatten(2, (-1, c * tile**2))

    @property
    def padded_size(self) -> int:
        """Side of the padded canvas that holds every cell whole."""
        return (self.side - 1) * self.stride + self.part_size

    def tile_index(self, channels: int, tile: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Where each cell's pixels lie in a tiled canvas, the layout sampling draws on.

        A tiled canvas is (N, tiles + 1, channels * tile * tile): the canvas cut into ceil(S / tile)² tiles of
        ``tile`` px, row-major, each flattened channel-major, then one more tile that takes the pixels a cell puts
        past the canvas's edge. It is the prior's input as it stands (no copy per step), see :meth:`untile`.

        Returns:
            (L, channels * K * K) int64 flat indices into (tiles + 1) * channels * tile * tile.
        """
        side = self._tile_side(tile)
        corner = torch.arange(self.side, device=device) * self.stride - self.padding
        offset = torch.arange(self.part_size, device=device)
        y = rearrange(corner, "r -> r 1 1 1 1") + rearrange(offset, "i -> 1 1 1 i 1")
        x = rearrange(corner, "c -> 1 c 1 1 1") + rearrange(offset, "j -> 1 1 1 1 j")
        channel = rearrange(torch.arange(channels, device=device), "k -> 1 1 k 1 1")
        flat = (((y // tile) * side + x // tile) * channels + channel) * tile**2 + (y % tile) * tile + x % tile
        inside = (y >= 0) & (y < self.canvas_size) & (x >= 0) & (x < self.canvas_size)
        flat = torch.where(inside, flat, side**2 * channels * tile**2)
        return rearrange(flat, "r c k i j -> (r c) (k i j)")

    def touched_tiles(self, tile: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The tiles of a tiled canvas (:meth:`tile_index`) that each cell's pixels fall in: (L, m) int64 tile
        numbers, m the most any cell touches; a cell that touches fewer is padded with the extra tile's number
        (``ceil(S / tile)²``), as are pixels past the canvas's edge."""
        return _touched_tiles(self, tile).to(device)

    def _tile_side(self, tile: int) -> int:
        """Tiles per row of a tiled canvas: the canvas rounded up to whole tiles."""
        return -(-self.canvas_size // tile)

    def new_tiled(self, count: int, channels: int, tile: int, like: torch.Tensor) -> torch.Tensor:
        """A blank tiled canvas (count, tiles + 1, channels * tile * tile), see :meth:`tile_index`, with ``like``'s
        dtype and device."""
        return like.new_zeros(count, self._tile_side(tile) ** 2 + 1, channels * tile**2)

    def draw(self, tiled: torch.Tensor, parts: torch.Tensor, locations: torch.Tensor, index: torch.Tensor) -> None:
        """Paste one hard part per image onto a tiled canvas in place, composing by max.

        The fast path of sampling: a gather and a scatter of C*K*K pixels instead of a whole-canvas fold.

        Args:
            tiled: (N, tiles + 1, C * tile * tile), see :meth:`tile_index`, or its (N, (tiles + 1) * C * tile *
                tile) rows; updated in place.
            parts: (N, C, K, K) pixels, 0 where nothing is drawn, or their (N, C * K * K) rows.
            locations: (N,) int64 cells.
            index: :meth:`tile_index` for C channels, on the canvas's device.
        """
        # Rows as given are not flattened again: a call per step of a sampler's loop (a flattening is a view: the
        # canvas is contiguous).
        if not tiled.is_contiguous():  # flatten would copy it, and the copy would be drawn on
            raise InvalidInputError("tiled must be contiguous, as Grid.new_tiled makes it: it is drawn on in place")
        flat = tiled if tiled.ndim == 2 else tiled.flatten(1)
        where = index[locations]
        flat.scatter_(1, where, torch.maximum(flat.gather(1, where), parts if parts.ndim == 2 else parts.flatten(1)))

    def untile(self, tiled: torch.Tensor, tile: int) -> torch.Tensor:
        """(N, tiles + 1, C * tile * tile) tiled canvas -> (N, C, S, S) canvas."""
        side = self._tile_side(tile)
        square = rearrange(tiled[:, :-1], "n (h w) (c i j) -> n c (h i) (w j)", h=side, i=tile, j=tile)
        return square[..., :self.canvas_size, :self.canvas_size]

    def _cut(self, square: torch.Tensor) -> torch.Tensor:
        """(..., P, P) padded canvas -> (..., S, S) canvas. The cells may stop short of the canvas's far edge (e.g.
        3 px cells every 3 px on a 4 px canvas): those pixels no cell reaches are blank."""
        short = max(0, self.padding + self.canvas_size - self.padded_size)
        square = F.pad(square, (0, short, 0, short))
        end = self.padding + self.canvas_size
        return square[..., self.padding:end, self.padding:end]

    def box(self, locations: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """The footprint of each drawn step's box: (N, T, L) one-hot locations and (N, T) z_is -> (N, T, 1, S, S),
        z_is inside the box (1 for a drawn step) and 0 elsewhere."""
        return self.place(present[:, :, None, None, None].expand(-1, -1, 1, self.part_size, self.part_size), locations)


@functools.cache  # a training step asks for them every time, and L calls of unique() are not free
def _touched_tiles(grid: Grid, tile: int) -> torch.Tensor:
    """:meth:`Grid.touched_tiles` on the CPU."""
    tiles = grid.tile_index(1, tile) // tile**2
    touched = [row.unique() for row in tiles]
    width = max(len(row) for row in touched)
    extra = grid._tile_side(tile) ** 2
    return torch.stack([F.pad(row, (0, width - len(row)), value=extra) for row in touched])


def compose(placed: torch.Tensor) -> torch.Tensor:
    """The final canvas: elementwise max over the steps.

    Args:
        placed: (N, T, C, S, S) each step's drawn part on a canvas of its own (zero for a step not drawn: see
            :func:`np_draw.model.place`), values >= 0.
    Returns:
        (N, C, S, S), background 0.
    """
    return placed.amax(dim=1)


def history(drawn: torch.Tensor) -> torch.Tensor:
    """What the prior sees before each step: the canvas after steps < t and the footprint of those steps.

    Args:
        drawn: (N, T, ...) each step's drawn part and its footprint on a canvas of their own, zero for a step not
            drawn: (N, T, C + 1, S, S) canvases (:meth:`Grid.place` and :meth:`Grid.box`), or the same in the
            prior's tiles (:meth:`Grid.place_tiled`).
    Returns:
        The same shape; entry t holds steps < t, entry 0 is blank. Its gradient is cummax's (see
        :func:`running_max`).
    """
    return _History.apply(drawn)


def _running_max_into(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Write the running maximum over axis 1 of ``x`` into ``out`` (same shape); return where each step reached the
    maximum so far (>= as cummax: the last of equal values wins), for :func:`_carry_back`."""
    rises = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    if x.shape[1]:
        out[:, 0], rises[:, 0] = x[:, 0], True
    for t in range(1, x.shape[1]):
        torch.ge(x[:, t], out[:, t - 1], out=rises[:, t])
        torch.maximum(out[:, t - 1], x[:, t], out=out[:, t])
    return rises


def _carry_back(grad: torch.Tensor, rises: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Write into ``out`` the gradient of a running maximum over axis 1 from its output's, ``grad``; ``rises[:, t]``
    marks where step t reached the maximum so far. Walking back, the gradients of steps t, t+1, ... gather until
    the step that set their maximum, as cummax's do."""
    carried = grad.new_zeros(grad.shape[:1] + grad.shape[2:])  # no grad[:, 0]: a one-step history has no steps here
    for t in range(grad.shape[1] - 1, -1, -1):
        carried = carried + grad[:, t]
        torch.mul(carried, rises[:, t], out=out[:, t])
        carried = carried * ~rises[:, t]
    return out


class _History(torch.autograd.Function):
    """:func:`history`'s running maximum written one entry later, after a blank one, into a tensor of its own: no
    concatenation of the blank entry (a copy of every canvas, forward and backward)."""

    @staticmethod
    def forward(ctx, drawn: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(drawn)
        out[:, 0] = 0
        ctx.save_for_backward(_running_max_into(drawn[:, :-1], out[:, 1:]))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (rises,) = ctx.saved_tensors
        grad_drawn = torch.empty_like(grad)
        grad_drawn[:, -1] = 0  # the last step is in no entry
        _carry_back(grad[:, 1:], rises, grad_drawn[:, :-1])
        return grad_drawn


class _RunningMax(torch.autograd.Function):
    """Cumulative max over axis 1 with cummax's gradient (each output's gradient goes to the last step that
    reached its value), as a loop of elementwise maxima: cummax along the step axis needs the steps moved last
    (two copies) and ran 6x slower forward than the loop on the CPU, and maxima's own backward pays a mask per step."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        ctx.save_for_backward(_running_max_into(x, out))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (rises,) = ctx.saved_tensors
        return _carry_back(grad, rises, torch.empty_like(grad))


def running_max(x: torch.Tensor) -> torch.Tensor:
    """Cumulative max over axis 1 of (N, T, ...), the values and the gradient of ``torch.cummax(x, 1).values``."""
    return _RunningMax.apply(x)
