import itertools

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from np_draw.canvas import Grid, compose, running_max
from np_draw.errors import InvalidInputError
from np_draw.prior import CanvasEmbedding

MNIST_GRID = Grid(canvas_size=28, part_size=5, stride=5, padding=1)


def test_mnist_grid_covers_30_pixels_with_one_pixel_padding():
    assert MNIST_GRID.num_cells == 36 and MNIST_GRID.padded_size == 30


def place_one(grid: Grid, part: torch.Tensor, cell: int) -> torch.Tensor:
    location = F.one_hot(torch.tensor([[cell]]), grid.num_cells).float()
    return grid.place(part[None, None], location)[0, 0]


def test_place_is_exact_and_clips_at_the_border():
    part = torch.arange(1, 26, dtype=torch.float32).reshape(1, 5, 5)
    # Cell 0 starts at (-1, -1): its first row and column fall off the canvas.
    canvas = place_one(MNIST_GRID, part, 0)
    assert torch.equal(canvas[0, :4, :4], part[0, 1:, 1:])
    assert canvas.sum() == part[0, 1:, 1:].sum()
    # Cell 7 = row 1, col 1 starts at (4, 4), whole.
    canvas = place_one(MNIST_GRID, part, 7)
    assert torch.equal(canvas[0, 4:9, 4:9], part[0]) and canvas.sum() == part.sum()
    # The last cell starts at (24, 24): its last row and column fall off.
    canvas = place_one(MNIST_GRID, part, 35)
    assert torch.equal(canvas[0, 24:, 24:], part[0, :4, :4])


def test_compose_takes_the_max_of_drawn_steps_only():
    grid = Grid(canvas_size=8, part_size=4, stride=4, padding=0)
    parts = torch.stack([torch.full((1, 4, 4), 0.3), torch.full((1, 4, 4), 0.7), torch.full((1, 4, 4), 0.9)])[None]
    locations = F.one_hot(torch.tensor([[0, 0, 3]]), 4).float()
    present = torch.tensor([[1.0, 1.0, 0.0]])
    canvas = compose(grid.place(parts * present[:, :, None, None, None], locations))
    assert torch.allclose(canvas[0, 0, :4, :4], torch.tensor(0.7))
    assert canvas[0, 0, 4:, 4:].abs().max() == 0  # step 2 not drawn


def test_draw_matches_place_and_compose():
    """The sampler's in-place gather/scatter paste equals the fold-based paste, RGB and clipping included."""
    grid = Grid(canvas_size=28, part_size=5, stride=5, padding=1)
    torch.manual_seed(0)
    n, steps = 4, 10
    parts = torch.rand(n, steps, 3, 5, 5)
    locs = torch.randint(0, grid.num_cells, (n, steps))
    present = (torch.rand(n, steps) < 0.7).float()
    expected = compose(grid.place(parts * present[:, :, None, None, None], F.one_hot(locs, grid.num_cells).float()))
    tiled = {}
    for tile in (4, 3):  # 28 px in tiles of 3: the last row and column of tiles reach past the canvas
        tiled[tile] = grid.new_tiled(n, 3, tile, parts)
        index = grid.tile_index(3, tile)
        for t in range(steps):
            grid.draw(tiled[tile], parts[:, t] * present[:, t, None, None, None], locs[:, t], index)
        assert torch.equal(grid.untile(tiled[tile], tile), expected)
    # The tiles of 4 px are the patches the prior's embedding cuts from the composed canvas.
    assert torch.equal(tiled[4][:, :-1], CanvasEmbedding(3, 28, 16, 8).tiles(expected[:, None])[:, 0])


def test_soft_parts_are_differentiable_and_one_hot_weights_give_the_hard_paste():
    grid = Grid(canvas_size=32, part_size=4, stride=4, padding=0)
    bank = torch.rand(6, 3, 4, 4)
    ids = torch.tensor([[2, 5, 1]])
    weights = F.one_hot(ids, 6).float().requires_grad_()
    locations = F.one_hot(torch.tensor([[0, 9, 63]]), 64).float().requires_grad_()
    soft = grid.place(torch.einsum("ntb,bchw->ntchw", weights, bank), locations)
    hard = grid.place(bank[ids], locations.detach())
    assert torch.equal(soft, hard)
    compose(soft).sum().backward()
    assert weights.grad.abs().sum() > 0 and locations.grad.abs().sum() > 0


def test_history_holds_the_canvas_before_each_step_masked_by_present():
    grid = Grid(canvas_size=8, part_size=4, stride=4, padding=0)
    present = torch.tensor([[1.0, 0.0, 1.0]])
    parts = torch.ones(1, 3, 2, 4, 4) * present[:, :, None, None, None]  # a part and its footprint
    locations = F.one_hot(torch.tensor([[0, 1, 2]]), 4).float()
    h = grid.history(parts, locations, 4)
    assert h.shape == (1, 3, 5, 32)  # four tiles and the one past the canvas
    canvases = grid.untile(h[0], 4)
    assert canvases[0].sum() == 0  # nothing drawn before step 0
    assert canvases[1, 0, :4, :4].sum() == 16 and canvases[1, 1].sum() == 16  # step 0's part and its footprint
    assert torch.equal(canvases[2], canvases[1])  # step 1 was not drawn: neither canvas nor footprint change


def test_running_max_equals_cummax_with_and_without_gradients():
    # Four levels: ties everywhere, as on a canvas of blank and fully inked pixels; the gradient of a tie goes to the
    # last step that reached it, as cummax's does.
    x = (torch.rand(3, 37, 2, 5) * 4).floor().div(4).requires_grad_()
    weights = torch.rand(3, 37, 2, 5)
    expected = torch.cummax(x, dim=1).values
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), x)
    ours = running_max(x)
    (grad,) = torch.autograd.grad((ours * weights).sum(), x)
    assert torch.equal(ours, expected) and torch.allclose(grad, expected_grad)
    with torch.no_grad():
        assert torch.equal(running_max(x), expected)


GRIDS = ((MNIST_GRID, 2), (Grid(canvas_size=32, part_size=4, stride=4, padding=0), 4),
         (Grid(canvas_size=10, part_size=3, stride=4, padding=1), 1),  # gaps between the cells
         (Grid(canvas_size=8, part_size=3, stride=2, padding=1), 2))  # overlapping cells: place folds (pixels sum)


def relaxed_inputs(grid: Grid, channels: int, ties: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Parts, location logits and straight-through one-hot locations as the VAE step makes them; with ``ties``,
    parts of three grey levels and every other step at one cell, so that maxima tie everywhere."""
    parts = torch.rand(3, 9, channels, grid.part_size, grid.part_size)
    logits = torch.randn(3, 9, grid.num_cells, requires_grad=True)
    hard = F.one_hot(logits.argmax(-1), grid.num_cells).float()
    if ties:
        parts = (parts * 3).floor() / 3
        hard[:, ::2] = F.one_hot(torch.tensor(3), grid.num_cells).float()
    soft = logits.softmax(-1)
    return parts.requires_grad_(), logits, hard + soft - soft.detach()


def test_compose_of_relaxed_latents_equals_composing_their_placed_canvases_with_the_same_gradients():
    """Grid.compose places each step's part at its one cell; compose(place()) places it on a canvas per step and
    takes their max, whose gradient ties share (blank pixels tie for every step that did not draw on them)."""
    torch.manual_seed(0)
    for (grid, channels), ties in itertools.product(GRIDS, (False, True)):
        parts, logits, locations = relaxed_inputs(grid, channels, ties)
        ours, expected = grid.compose(parts, locations), compose(grid.place(parts, locations))
        assert ours.shape == (3, channels, grid.canvas_size, grid.canvas_size) and torch.equal(ours, expected)
        weights = torch.rand_like(ours)
        grads = torch.autograd.grad((ours * weights).sum(), (parts, logits), retain_graph=True)
        for grad, expected_grad in zip(grads, torch.autograd.grad((expected * weights).sum(), (parts, logits)),
                                       strict=True):
            torch.testing.assert_close(grad, expected_grad)
        with torch.no_grad():
            assert torch.equal(grid.compose(parts, locations), expected)


def test_history_is_the_shifted_running_max_of_placed_canvases_cut_into_tiles_with_the_same_gradients():
    """Grid.history (the prior's relaxed input in training) against the running max (cummax) of Grid.place's
    canvases cut into the embedding's tiles: values, and gradients (ties go to the last step that reached a value)."""
    torch.manual_seed(0)
    for (grid, channels), ties in itertools.product(GRIDS, (False, True)):
        parts, logits, locations = relaxed_inputs(grid, channels, ties)
        ours = grid.history(parts, locations, 4)
        side = -(-grid.canvas_size // 4)
        pad = side * 4 - grid.canvas_size
        cut = rearrange(F.pad(grid.place(parts, locations), (0, pad, 0, pad)), "n t c (h i) (w j) -> n t (h w) (c i j)",
                        i=4, j=4)
        expected = torch.cat([torch.zeros_like(cut[:, :1]), torch.cummax(cut[:, :-1], 1).values], 1)
        assert ours.shape == (3, 9, side**2 + 1, channels * 16) and torch.equal(ours[:, :, :-1], expected)
        weights = torch.rand_like(expected)
        grads = torch.autograd.grad((ours[:, :, :-1] * weights).sum(), (parts, logits), retain_graph=True)
        expected_grads = torch.autograd.grad((expected * weights).sum(), (parts, logits), retain_graph=True)
        for grad, expected_grad in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(grad, expected_grad)
        assert grads[0][:, -1].abs().sum() == 0  # the last step is in no entry
    one = grid.history(parts[:, :1], locations[:, :1], 4)  # one step: only the blank entry, and no gradient
    assert one.abs().sum() == 0
    assert all(g.abs().sum() == 0 for g in torch.autograd.grad(one.sum(), (parts, logits)))


def test_tiling_fast_path_equals_fold_for_grey_and_rgb():
    torch.manual_seed(0)
    for grid, channels in ((MNIST_GRID, 1), (Grid(canvas_size=32, part_size=4, stride=4, padding=0), 3)):
        parts = torch.rand(3, 7, channels, grid.part_size, grid.part_size)
        locations = F.one_hot(torch.randint(0, grid.num_cells, (3, 7)), grid.num_cells).float()
        blocks = torch.einsum("ntk,ntl->ntkl", parts.flatten(2), locations).flatten(0, 1)
        folded = F.fold(blocks, grid.canvas_size, grid.part_size, stride=grid.stride, padding=grid.padding)
        assert torch.equal(grid.place(parts, locations).flatten(0, 1), folded)


def test_overlapping_cells_compose_by_max():
    grid = Grid(canvas_size=8, part_size=4, stride=2, padding=0)  # 3 x 3 cells overlapping by 2 px
    assert grid.num_cells == 9
    parts = torch.stack([torch.full((1, 4, 4), 0.2), torch.full((1, 4, 4), 0.6)])[None]
    locations = F.one_hot(torch.tensor([[0, 1]]), 9).float()
    canvas = compose(grid.place(parts, locations))[0, 0]
    assert torch.allclose(canvas[:4, :2], torch.tensor(0.2)) and torch.allclose(canvas[:4, 2:6], torch.tensor(0.6))
    assert canvas[4:].sum() == 0 and canvas[:, 6:].sum() == 0


def test_compose_and_history_edge_cases():
    """An empty batch and one step, spread location weights (compose takes place()'s path; history refuses them),
    the tile past the canvas (no gradient from it), and a second derivative (refused, not silently wrong)."""
    for n, steps in ((0, 5), (2, 1)):
        parts = torch.rand(n, steps, 2, 5, 5, requires_grad=True)
        locations = F.one_hot(torch.zeros(n, steps, dtype=torch.long), 36).float().requires_grad_()
        history, canvas = MNIST_GRID.history(parts, locations, 4), MNIST_GRID.compose(parts, locations)
        assert history.shape == (n, steps, 50, 32) and canvas.shape == (n, 2, 28, 28) and canvas.is_contiguous()
        (history.sum() + canvas.sum()).backward()
        assert parts.grad.shape == parts.shape and locations.grad.shape == locations.shape
    parts = torch.rand(2, 3, 1, 5, 5)
    spread = torch.full((2, 3, 36), 1 / 36)
    assert torch.equal(MNIST_GRID.compose(parts, spread), compose(MNIST_GRID.place(parts, spread)))
    with pytest.raises(InvalidInputError, match="at most one non-zero weight per step"):
        MNIST_GRID.history(parts, spread, 4)
    # NaN weights (a diverged encoder's) are not spread: they run on, for training to report the NaN loss
    diverged = torch.full((2, 3, 36), float("nan"))
    assert MNIST_GRID.history(parts, diverged, 4).isnan().any() and MNIST_GRID.compose(parts, diverged).isnan().any()
    grid = Grid(canvas_size=8, part_size=3, stride=3, padding=1)  # cells past the canvas's edge
    parts.requires_grad_()
    last = grid.history(parts[..., :3, :3], F.one_hot(torch.tensor([[0, 0, 8]] * 2), 9).float(), 4)[:, :, -1]
    assert last.abs().sum() > 0 and torch.autograd.grad(last.sum(), parts)[0].abs().sum() == 0
    logits = torch.randn(2, 3, 36, requires_grad=True)
    soft = logits.softmax(-1)
    locations = F.one_hot(logits.argmax(-1), 36).float() + soft - soft.detach()
    for placed in (MNIST_GRID.compose(parts, locations), MNIST_GRID.history(parts, locations, 4)):
        with pytest.raises(NotImplementedError, match="differentiable once"):
            torch.autograd.grad(placed.square().sum(), logits, create_graph=True)


@pytest.mark.parametrize("sizes, message", [
    ((28, 40, 5, 0), "part_size must be at most the padded canvas"),  # side -2, num_cells 4
    ((28, 5, 0, 1), "stride must be a positive integer"),  # a ZeroDivisionError
    ((28, 5, 5, -1), "padding must be a non-negative integer"),
    ((28.0, 5, 5, 1), "canvas_size must be a positive integer"),
    ((0, 1, 1, 0), "canvas_size must be a positive integer"),
])
def test_a_grid_of_no_cell_is_refused(sizes, message):
    """A part larger than the padded canvas gave a negative side and a positive number of cells (its square), a
    stride of 0 a ZeroDivisionError at the first use."""
    with pytest.raises(ValueError, match=message):
        Grid(*sizes)
    assert Grid(4, 3, 3, 0).num_cells == 1 and Grid(2, 4, 4, 1).num_cells == 1  # cells that stop short or hang over
