"""Properties of pasting, rendering and parsing that hold for any grid, bank and latents (hypothesis)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from np_draw import Grid, Latents, PartBank, parse, render
from np_draw.canvas import compose
from np_draw.model import place

# A few dozen small cases keep the file to seconds; the shapes vary more than the pixel values need to.
SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def grids(draw: st.DrawFn, tiling: bool = False) -> Grid:
    """A grid; ``tiling``: cells that tile the canvas exactly (stride = part size, no padding)."""
    part = draw(st.integers(1, 5))
    if tiling:
        return Grid(canvas_size=part * draw(st.integers(1, 5)), part_size=part, stride=part, padding=0)
    stride = draw(st.integers(1, part))
    padding = draw(st.integers(0, part - 1))
    canvas = draw(st.integers(max(part - 2 * padding, 1), 16))
    return Grid(canvas_size=canvas, part_size=part, stride=stride, padding=padding)


def _bank(grid: Grid, channels: int, num_parts: int, generator: torch.Generator, low: float = 0.0) -> PartBank:
    bank = PartBank(num_parts, channels, grid.part_size)
    bank.parts.copy_(low + (1 - low) * torch.rand(bank.parts.shape, generator=generator))
    return bank


def _latents(grid: Grid, num_parts: int, count: int, generator: torch.Generator) -> Latents:
    shape = (count, grid.num_cells)
    return Latents(torch.randint(0, num_parts, shape, generator=generator),
                   torch.randint(0, grid.num_cells, shape, generator=generator),
                   (torch.rand(shape, generator=generator) < 0.5).float())


@SETTINGS
@given(grid=grids(), channels=st.sampled_from([1, 3]), num_parts=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_pasting_stays_in_the_unit_interval(grid: Grid, channels: int, num_parts: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    bank = _bank(grid, channels, num_parts, g)
    latents = _latents(grid, num_parts, 3, g)
    hard = render(bank, grid, latents.ids, latents.locs, latents.present)
    # Soft weights, as training's relaxed samples are: convex mixtures of parts and of cells.
    part_weights = torch.softmax(torch.randn(3, grid.num_cells, num_parts, generator=g), -1)
    cell_weights = torch.softmax(torch.randn(3, grid.num_cells, grid.num_cells, generator=g), -1)
    soft = render(bank, grid, part_weights, cell_weights, latents.present)
    for canvas in (hard, soft):
        assert canvas.shape == (3, channels, grid.canvas_size, grid.canvas_size)
        assert canvas.min() >= 0 and canvas.max() <= 1 + 1e-6


@SETTINGS
@given(grid=grids(tiling=True), channels=st.sampled_from([1, 3]), num_parts=st.integers(1, 6),
       seed=st.integers(0, 2**31))
def test_parts_placed_at_cells_parse_back_to_their_latents(grid: Grid, channels: int, num_parts: int,
                                                           seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    # Parts bright enough never to count as empty, and (being random) distinct.
    bank = _bank(grid, channels, num_parts, g, low=0.2)
    planted = _latents(grid, num_parts, 4, g)
    planted.locs = torch.arange(grid.num_cells).expand(4, -1)
    images = render(bank, grid, planted.ids, planted.locs, planted.present)
    parsed = parse(images, bank, grid)
    assert torch.equal(parsed.present, planted.present)
    drawn = planted.present.bool()
    assert torch.equal(parsed.ids[drawn], planted.ids[drawn])
    assert torch.equal(parsed.locs[drawn], planted.locs[drawn])
    assert torch.equal(render(bank, grid, parsed.ids, parsed.locs, parsed.present), images)


@SETTINGS
@given(grid=grids(), channels=st.sampled_from([1, 3]), num_parts=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_soft_paste_with_one_hot_weights_is_the_hard_paste(grid: Grid, channels: int, num_parts: int,
                                                           seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    bank = _bank(grid, channels, num_parts, g)
    latents = _latents(grid, num_parts, 3, g)
    # Soft: mixtures of parts and cells by weights, composed by max (training's path).
    soft = compose(place(bank, grid, F.one_hot(latents.ids, num_parts).float(),
                         F.one_hot(latents.locs, grid.num_cells).float(), latents.present))
    # Hard: each part looked up and scattered onto the padded canvas in place (sampling's path).
    tiled = grid.new_tiled(3, channels, 4, bank.parts)
    index = grid.tile_index(channels, 4)
    for step in range(grid.num_cells):
        parts = bank.lookup(latents.ids[:, step]) * latents.present[:, step, None, None, None]
        grid.draw(tiled, parts, latents.locs[:, step], index)
    assert torch.allclose(soft, grid.untile(tiled, 4), atol=1e-6)
