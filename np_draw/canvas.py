"""Canvas composition (spec §4): pasting parts on a grid of cells and composing them by elementwise max.

A part is a (C, K, K) patch. Location l is grid cell l: its top-left pixel is (row·stride − padding,
col·stride − padding), so the grid may reach past the canvas, and whatever falls off is clipped. Pasting a part at
a one-hot location is a broadcast product and a reshape where the cells tile the canvas (stride = part size, as in
every preset) and ``torch.nn.functional.fold`` where they overlap; composing takes each part to its one cell, and
sampling draws on the prior's tiles (:meth:`Grid.draw`). Each is exact for hard locations and lets gradients
reach a straight-through location sample and soft part weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from .errors import InvalidInputError, check_count


@dataclass(frozen=True)
class Grid:
    """The cells of a canvas: ``canvas_size`` px square, cells of ``part_size`` px every ``stride`` px."""

    canvas_size: int
    part_size: int
    stride: int
    padding: int

    def __post_init__(self) -> None:
        """Sizes that make a grid of at least one cell: a part larger than the padded canvas gave a negative
        :attr:`side` and a positive ``num_cells`` (its square), and a stride of 0 a ZeroDivisionError."""
        for name in ("canvas_size", "part_size", "stride", "padding"):
            check_count(getattr(self, name), f"Grid {name}", least=0 if name == "padding" else 1)
        if self.part_size > self.canvas_size + 2 * self.padding:
            raise InvalidInputError(f"Grid part_size must be at most the padded canvas, canvas_size + 2 * padding = "
                                    f"{self.canvas_size + 2 * self.padding} px, got {self.part_size}")

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

    def compose(self, parts: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """``compose(self.place(parts, locations))``, the maximum of the placed parts over the steps, with the same
        values and the same gradients up to float rounding.

        Where each step has at most one non-zero location weight (one-hot or straight-through one-hot, as sampled
        latents and the VAE step's relaxed sample have), each part is placed at its one cell only, not on a canvas
        of its own: the gradient of a location a step did not take is its part times the canvas's gradient where
        the canvas is blank (shared there with the other steps that left the pixel blank), one batched product per
        image. Spread location weights, and grids whose cells overlap, take :meth:`place`'s path. Differentiable
        once: a backward pass with ``create_graph=True`` through the one-cell path raises NotImplementedError.

        Args:
            parts: (N, T, C, K, K) values >= 0.
            locations: (N, T, L) weights >= 0.
        Returns:
            (N, C, S, S).
        """
        if self.stride < self.part_size or _spread(locations):
            return compose(self.place(parts, locations))
        return _Composed.apply(parts, locations, self)

    def history(self, parts: torch.Tensor, locations: torch.Tensor, tile: int) -> torch.Tensor:
        """What the prior sees before each step, in its tiles: entry t is the maximum of the placed parts of the
        steps before t (entry 0 blank), for locations with at most one non-zero weight per step (one-hot or
        straight-through one-hot: the VAE step's relaxed sample, the parts with their footprint channel).

        The values are those of the running maximum of :meth:`place`'s canvases cut into tiles, and so are the
        gradients (a tie goes to the last step that reached the value, as ``torch.cummax``'s), up to float
        rounding; each step draws its part on a copy of the entry before, instead of T whole canvases per image
        being placed, accumulated and cut. Differentiable once (``create_graph=True`` raises NotImplementedError).

        Args:
            parts: (N, T, C, K, K) values >= 0.
            locations: (N, T, L) weights >= 0.
            tile: the tiles' side in pixels.
        Returns:
            (N, T, tiles + 1, C * tile * tile) tiled canvases (:meth:`tile_index`). The last tile holds the largest
            value put past the canvas's edge: nothing reads it, and no gradient flows from it.
        """
        if _spread(locations):
            raise InvalidInputError("locations must have at most one non-zero weight per step (one-hot or "
                                    "straight-through one-hot)")
        return _History.apply(parts, locations, self.tile_index(parts.shape[2], tile, parts.device),
                              (self._tile_side(tile) ** 2 + 1, parts.shape[2] * tile**2))

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
    # Kept for the process: made under a caller's torch.inference_mode() it would be an inference tensor, which
    # autograd cannot save, and every later log p(z) with gradients (fit's prior stage) would fail on it.
    with torch.inference_mode(False):
        tiles = grid.tile_index(1, tile, "cpu") // tile**2
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


def _running_max_into(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Write the running maximum over axis 1 of ``x`` into ``out`` (same shape); return where each step reached the
    maximum so far (>= as cummax: the last of equal values wins), 1 or 0 in ``x``'s dtype, for :func:`_carry_back`."""
    rises = torch.empty_like(x)
    if x.shape[1]:
        out[:, 0], rises[:, 0] = x[:, 0], 1
    for t in range(1, x.shape[1]):
        torch.ge(x[:, t], out[:, t - 1], out=rises[:, t])
        torch.maximum(out[:, t - 1], x[:, t], out=out[:, t])
    return rises


def _carry_back(grad: torch.Tensor, rises: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Write into ``out`` the gradient of a running maximum over axis 1 from its output's, ``grad``; ``rises[:, t]``
    is 1 where step t reached the maximum so far, else 0, in ``grad``'s dtype (a boolean mask cost a conversion per
    product). Walking back, the gradients of steps t, t+1, ... gather until the step that set their maximum, as
    cummax's do."""
    carried = grad.new_zeros(grad.shape[:1] + grad.shape[2:])  # no grad[:, 0]: a one-step history has no steps here
    for t in range(grad.shape[1] - 1, -1, -1):
        carried += grad[:, t]
        torch.mul(carried, rises[:, t], out=out[:, t])
        carried -= out[:, t]  # what went to step t: zero where it rose
    return out


def _spread(locations: torch.Tensor) -> bool:
    """Whether some step of (N, T, L) location weights has more than one non-zero weight. NaN counts as zero, so
    that a diverged encoder's NaN weights run on to the loss, where training reports them."""
    return bool(locations.abs().gt(0).sum(-1).gt(1).any())


def _refuse_create_graph(name: str) -> None:
    """Refuse a backward pass that builds its own graph (``create_graph=True``, grad mode on): the backward of
    :meth:`Grid.compose` and :meth:`Grid.history` is differentiable once, and a second derivative through it
    would be silently wrong."""
    if torch.is_grad_enabled():
        raise NotImplementedError(f"{name} is differentiable once: its gradient cannot be differentiated again "
                                  "(create_graph=True)")


def _one_cell(parts: torch.Tensor, locations: torch.Tensor,
              index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For (N, T, C, K, K) parts at (N, T, L) locations with one non-zero weight per step: the cell of each step,
    (N, T), its weight, (N, T, 1), where the step's pixels lie, (N, T, C * K * K) rows of ``index``, and their
    values, the part times the weight (:meth:`Grid.place`'s product at that cell; zero at the others). A step with
    no weight takes cell 0 with weight 0: the same blank placement."""
    cells = locations.argmax(-1)
    weight = locations.gather(2, cells[..., None])
    return cells, weight, index[cells], parts.flatten(2) * weight


class _Composed(torch.autograd.Function):
    """:meth:`Grid.compose` on a grid whose cells do not overlap, for one-hot locations."""

    @staticmethod
    def forward(ctx, parts: torch.Tensor, locations: torch.Tensor, grid: Grid) -> torch.Tensor:
        n, c, size = parts.shape[0], parts.shape[2], grid.canvas_size
        index = grid.tile_index(c, size, parts.device)  # one tile: the canvas, then one slot for clipped pixels
        cells, weight, where, values = _one_cell(parts, locations, index)
        canvas = parts.new_zeros(n, c * size**2 + 1).scatter_reduce_(1, where.flatten(1), values.flatten(1), "amax")
        ctx.save_for_backward(parts, cells, weight, where, values, canvas, index)
        return canvas[:, :-1].contiguous().view(n, c, size, size)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        _refuse_create_graph("Grid.compose")
        parts, cells, weight, where, values, canvas, index = ctx.saved_tensors
        steps = parts.shape[1]
        flat = where.flatten(1)
        # amax's gradient: the canvas's, shared equally by the steps whose placed canvas reached the maximum; a step
        # reaches a blank pixel off its cell (its canvas is 0 there), and the pixels of its cell that equal the max
        ties = values == canvas.gather(1, flat).view_as(values)
        reached = canvas.new_zeros(canvas.shape).scatter_add_(1, flat, ties.flatten(1).to(canvas.dtype))
        covered = canvas.new_zeros(canvas.shape).scatter_add_(1, flat, torch.ones_like(values).flatten(1))
        blank = canvas == 0
        shared = F.pad(grad.flatten(1), (0, 1)) / ((steps - covered) * blank + reached)
        at_cell = shared.gather(1, flat).view_as(values) * ties
        grad_locations = None
        if ctx.needs_input_grad[1]:
            # A cell the step did not take: its part times the canvas's gradient where the canvas is blank, for every
            # step at once; at the step's own cell, its part times the gradient its pixels got.
            off_cell = (shared * blank)[:, index]  # (N, L, C * K * K)
            flat_parts = parts.flatten(2)
            grad_locations = torch.bmm(flat_parts, off_cell.transpose(1, 2))
            grad_locations.scatter_(2, cells[..., None], (at_cell * flat_parts).sum(-1, keepdim=True))
        return (at_cell * weight).view_as(parts), grad_locations, None


class _History(torch.autograd.Function):
    """:meth:`Grid.history`: each entry a copy of the one before with the previous step's part drawn on it by max."""

    @staticmethod
    def forward(ctx, parts: torch.Tensor, locations: torch.Tensor, index: torch.Tensor,
                shape: tuple[int, int]) -> torch.Tensor:
        n, steps = parts.shape[:2]
        _, weight, where, values = _one_cell(parts, locations, index)
        out = parts.new_empty(n, steps, *shape)
        flat = out.flatten(2)  # a view: out is contiguous
        flat[:, :1] = 0
        for t in range(steps - 1):
            flat[:, t + 1] = flat[:, t]
            flat[:, t + 1].scatter_reduce_(1, where[:, t], values[:, t], "amax")
        ctx.save_for_backward(parts, weight, where, values, out, index)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, None, None]:
        _refuse_create_graph("Grid.history")
        parts, weight, where, values, out, index = ctx.saved_tensors
        n, steps, canvas = parts.shape[0], parts.shape[1], (out.shape[2] - 1) * out.shape[3]
        out = out.flatten(2)
        # Where step s reached the maximum of the steps before it (>=, as cummax: the last of equal values takes
        # the gradient): off its cell where the history is blank, on it where its pixel is at least the history's.
        # The pixels past the canvas share the last tile's first slot: marked alike, whatever the order of writes.
        rises = torch.eq(out[:, :-1], 0, out=torch.empty_like(out[:, :-1]))
        before = where[:, :-1]
        rises.scatter_(2, before, ((values[:, :-1] >= out[:, :-1].gather(2, before)) | (before >= canvas)).to(out))
        # The tile past the canvas passes no gradient back: the carry runs over the canvas's tiles only.
        grad_drawn = torch.empty_like(out)
        grad_drawn[:, -1:], grad_drawn[..., canvas:] = 0, 0  # the last step is in no entry
        _carry_back(grad.flatten(2)[:, 1:, :canvas], rises[..., :canvas], grad_drawn[:, :-1, :canvas])
        at_cell = grad_drawn.gather(2, where)
        grad_locations = None
        if ctx.needs_input_grad[1]:
            # Every cell a step could have taken: its part times the gradient of the pixels that cell would cover,
            # multiplied in place: a second (N, T, L, m) tensor (39 MB at MNIST's batch of 150) made this 1.6x slower
            cellwise = grad_drawn.gather(2, index.flatten().expand(n, steps, -1)).unflatten(2, index.shape)
            grad_locations = cellwise.mul_(parts.flatten(2)[:, :, None]).sum(-1)
        return (at_cell * weight).view_as(parts), grad_locations, None, None


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
