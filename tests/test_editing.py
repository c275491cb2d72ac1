from collections import Counter

import numpy as np
import pytest
import torch
from conftest import random_model

from np_draw import Latents, NPDraw
from np_draw.editing import interpolate, paste_canvas, paste_latents, region_cells, region_pixels

TOP_HALF = (0, 0, 28, 14)  # left, top, right, bottom: the top three rows of MNIST's 6 x 6 cells


@pytest.fixture(scope="module")
def model():
    return random_model("mnist")


@pytest.fixture(scope="module")
def pretrained():
    return NPDraw.from_pretrained("mnist")


def drawn_parts(latents: Latents, n: int) -> Counter:
    """The multiset of (part, cell) pairs drawing ``n`` draws: all its canvas depends on."""
    steps = latents.present[n].bool()
    return Counter(zip(latents.ids[n, steps].tolist(), latents.locs[n, steps].tolist()))


def test_regions_as_cells_or_boxes(model):
    grid = model.grid
    assert region_cells(grid, box=TOP_HALF).nonzero()[:, 0].tolist() == list(range(18))
    # A cell counts when most of its pixels are in the box: rows 4-8 are cell row 1, 12-16 mostly row 2 (12-13)
    # and row 3 (14-16).
    assert region_cells(grid, box=(0, 4, 5, 9)).nonzero()[:, 0].tolist() == [6]
    assert region_cells(grid, box=(0, 12, 28, 17)).nonzero()[:, 0].tolist() == list(range(18, 24))
    assert region_cells(grid, cells=[3, 5]).nonzero()[:, 0].tolist() == [3, 5]
    assert torch.equal(region_cells(grid, cells=torch.arange(36) < 4), torch.arange(36) < 4)
    # A list (or array) of bools is a mask too, not the indices 0 and 1
    for mask in ([True] * 4 + [False] * 32, np.arange(36) < 4):
        assert region_cells(grid, cells=mask).nonzero()[:, 0].tolist() == [0, 1, 2, 3]
    assert region_cells(grid, cells=[np.int64(7)]).nonzero()[:, 0].tolist() == [7]
    with pytest.raises(ValueError, match=r"cell indices or a boolean mask, not both, got \[1, True\]"):
        region_cells(grid, cells=[1, True])
    pixels = region_pixels(grid, cells=[0, 7])
    assert pixels.sum() == 4 * 4 + 5 * 5 and pixels[:4, :4].all() and pixels[4:9, 4:9].all()
    assert region_pixels(grid, box=(2, 3, 10, 5)).sum() == 8 * 2


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of cells= or box="),
    ({"cells": [1], "box": TOP_HALF}, "exactly one of cells= or box="),
    ({"cells": [36]}, r"cells must be ints in \[0, 36\)"),
    ({"cells": torch.ones(5, dtype=torch.bool)}, r"must have shape \(36,\)"),
    ({"box": (0, 0, 29, 14)}, "0 <= left < right <= 28"),
    ({"box": (0, 0, 14)}, "box must be"),
])
def test_bad_regions_raise_clear_errors(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        region_cells(model.grid, **kwargs)


def test_pasting_parses_changes_only_the_steps_and_pixels_of_the_region(model, mnist_images):
    target, source = model.parse(mnist_images[:6]), model.parse(mnist_images[6:12])
    edited = paste_latents(model, target, source, box=TOP_HALF)
    inside = torch.arange(36) < 18
    # Steps of the top cells come from the source, the others from the target.
    assert torch.equal(edited.present[:, inside], source.present[:, inside])
    assert torch.equal(edited.present[:, ~inside], target.present[:, ~inside])
    for n in range(6):
        assert drawn_parts(edited, n) == (
            Counter({k: v for k, v in drawn_parts(source, n).items() if k[1] < 18})
            + Counter({k: v for k, v in drawn_parts(target, n).items() if k[1] >= 18}))
    # On the canvas: the source's pixels in the top 14 rows, the target's below; the same as a canvas paste.
    assert torch.equal(edited.canvas[..., :14, :], source.canvas[..., :14, :])
    assert torch.equal(edited.canvas[..., 14:, :], target.canvas[..., 14:, :])
    assert torch.equal(edited.canvas, paste_canvas(model.grid, target.canvas, source.canvas, box=TOP_HALF))
    assert not torch.equal(edited.canvas, target.canvas)
    assert model.decode(edited).shape == (6, 1, 28, 28)


def test_a_canvas_paste_changes_only_the_region_pixels(model, mnist_images):
    target, source = mnist_images[:3], mnist_images[3:6]
    pasted = paste_canvas(model.grid, target, source, cells=[7, 8, 14])
    region = region_pixels(model.grid, cells=[7, 8, 14])
    assert torch.equal(pasted[..., region], source[..., region])
    assert torch.equal(pasted[..., ~region], target[..., ~region])
    with pytest.raises(ValueError, match="canvases of one shape"):
        paste_canvas(model.grid, target, source[:2], cells=[1])


def test_pasting_latents_in_any_step_order_keeps_every_drawn_part(model):
    """Prior samples draw cells in any order; when a step t is claimed by both drawings, target's step moves."""
    out = model.sample(8, torch.Generator().manual_seed(5), progress=False)
    target, source = out.latents[:4], out.latents[4:]
    region = torch.zeros(36, dtype=torch.bool)
    region[[2, 3, 9, 10, 20, 33]] = True
    edited = paste_latents(model, target, source, cells=region)
    for n in range(4):
        assert drawn_parts(edited, n) == (
            Counter({k: v for k, v in drawn_parts(source, n).items() if region[k[1]]})
            + Counter({k: v for k, v in drawn_parts(target, n).items() if not region[k[1]]}))
    assert torch.equal(edited.canvas, model.render(edited.ids, edited.locs, edited.present))
    # A collision made by hand: at step 3 the target draws cell 30 (kept) and the source cell 2 (taken).
    blank = {"ids": torch.zeros(1, 36, dtype=torch.long), "locs": torch.zeros(1, 36, dtype=torch.long),
                 "present": torch.zeros(1, 36)}
    one, two = Latents(**{k: v.clone() for k, v in blank.items()}), Latents(**{k: v.clone() for k, v in blank.items()})
    one.ids[0, 3], one.locs[0, 3], one.present[0, 3] = 7, 30, 1
    two.ids[0, 3], two.locs[0, 3], two.present[0, 3] = 9, 2, 1
    moved = paste_latents(model, one, two, cells=[2])
    assert moved.present[0].nonzero()[:, 0].tolist() == [0, 3]
    assert (moved.ids[0, 0], moved.locs[0, 0], moved.ids[0, 3], moved.locs[0, 3]) == (7, 30, 9, 2)
    # More drawn steps than T cannot be pasted.
    full = Latents(torch.zeros(1, 36, dtype=torch.long), torch.full((1, 36), 30), torch.ones(1, 36))
    inside = Latents(torch.zeros(1, 36, dtype=torch.long), torch.full((1, 36), 2), torch.ones(1, 36))
    with pytest.raises(ValueError, match="the source draws 36 parts in the region and the target 36 outside it, more "
                                         "than its T=36 steps hold: paste a smaller region, or remove 36 of"):
        paste_latents(model, full, inside, cells=[2])


@pytest.mark.parametrize("method", ["logits", "swap"])
def test_interpolation_runs_between_the_two_reconstructions(pretrained, mnist_images, method):
    first, second = mnist_images[0], mnist_images[1]
    path = interpolate(pretrained, first, second, 5, method=method)
    assert path.shape == (5, 1, 28, 28) and path.min() >= 0 and path.max() <= 1
    ends = pretrained.reconstruct(torch.stack([first, second]))
    assert torch.allclose(path[0], ends[0], atol=1e-6) and torch.allclose(path[-1], ends[1], atol=1e-6)
    middle = path[2]
    assert (middle - ends[0]).abs().max() > 0.2 and (middle - ends[1]).abs().max() > 0.2


def test_the_swap_interpolation_is_a_paste_of_the_first_cells(pretrained, mnist_images):
    first, second = mnist_images[2:3], mnist_images[3:4]
    path = interpolate(pretrained, first, second, 3, method="swap")
    half = paste_latents(pretrained, pretrained.encode(first), pretrained.encode(second), box=TOP_HALF)
    assert torch.allclose(path[1:2], pretrained.decode(half), atol=1e-6)


def test_the_swap_interpolation_of_faces_that_draw_every_step():
    # Two face encodings drawing all T = 64 steps in no grid order cannot share T steps as latents; the wipe works
    # on canvases, and its ends are still the reconstructions.
    faces = NPDraw.from_pretrained("celeba")
    first, second = faces.sample(2, generator=torch.Generator().manual_seed(0), progress=False).images
    encoded = faces.encode(torch.stack([first, second]))
    assert encoded.present.sum(1).min() > 0.9 * faces.config.num_steps
    path = interpolate(faces, first, second, 8, method="swap")
    ends = faces.reconstruct(torch.stack([first, second]))
    assert path.shape == (8, 3, 64, 64)
    assert torch.allclose(path[0], ends[0], atol=1e-6) and torch.allclose(path[-1], ends[1], atol=1e-6)


def test_interpolation_rejects_bad_arguments(model, mnist_images):
    with pytest.raises(ValueError, match="num must be an int >= 2"):
        interpolate(model, mnist_images[0], mnist_images[1], 1)
    with pytest.raises(ValueError, match="method must be 'logits' or 'swap'"):
        interpolate(model, mnist_images[0], mnist_images[1], method="linear")
    with pytest.raises(ValueError, match=r"first must be one image, got 2 \(shape \(2, 1, 28, 28\)\)"):
        interpolate(model, mnist_images[:2], mnist_images[2:4])


def test_interpolation_takes_one_image_with_its_channels_last():
    """A row of an NHWC array (the layout of .npz files and of PIL's arrays), (H, W, C), was read as C grey images
    of H x W and refused, though NHWC batches and (1, H, W, C) are taken."""
    model = random_model("cifar10")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first, second = images.permute(0, 2, 3, 1).numpy()  # (32, 32, 3) each
    for method in ("logits", "swap"):
        expected = interpolate(model, images[0], images[1], 3, method=method)
        assert torch.equal(interpolate(model, first, second, 3, method=method), expected)
    grey = random_model("mnist")
    digit = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(interpolate(grey, digit[0].permute(1, 2, 0), digit[1].permute(1, 2, 0), 3),
                       interpolate(grey, digit[0], digit[1], 3))


def noise(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 36, 50 + 36 + 1, generator=torch.Generator().manual_seed(seed))


def test_completion_keeps_the_given_steps_and_agrees_with_and_without_the_cache(pretrained, mnist_images):
    model = pretrained
    given = model.parse(mnist_images[:6])
    u = noise(6, seed=1)
    cached = model.prior.sample(model.bank, u, prefix=Latents(given.ids[:, :18], given.locs[:, :18],
                                                                given.present[:, :18]))
    full = model.prior.sample(model.bank, u, use_cache=False, prefix=Latents(
        given.ids[:, :18], given.locs[:, :18], given.present[:, :18]))
    for name in ("ids", "locs", "present", "canvas"):
        assert torch.equal(getattr(cached, name), getattr(full, name))
    assert torch.equal(cached.ids[:, :18], given.ids[:, :18]) and torch.equal(cached.locs[:, :18], given.locs[:, :18])
    assert torch.equal(cached.present[:, :18], given.present[:, :18])
    assert torch.equal(cached.canvas, model.render(cached.ids, cached.locs, cached.present))
    # The prefix changes what comes after it: the rest is drawn given the prefix.
    free = model.prior.sample(model.bank, u)
    assert not torch.equal(free.ids[:, 18:] * free.present[:, 18:], cached.ids[:, 18:] * cached.present[:, 18:])


def test_completing_all_steps_gives_the_latents_back_and_none_samples(model, mnist_images):
    given = model.parse(mnist_images[:4])
    out = model.complete(given, 36, torch.Generator().manual_seed(0))
    assert torch.equal(out.latents.present, given.present)
    drawn = given.present.bool()
    assert torch.equal(out.latents.ids[drawn], given.ids[drawn]) and torch.equal(out.latents.locs, given.locs)
    assert torch.equal(out.latents.canvas, given.canvas)
    assert torch.allclose(out.images, model.decode(given), atol=1e-6)
    none = model.complete(given, 0, torch.Generator().manual_seed(4))
    sampled = model.sample(4, torch.Generator().manual_seed(4), progress=False)
    assert torch.equal(none.latents.ids, sampled.latents.ids) and torch.equal(none.images, sampled.images)


def test_completion_is_seeded_per_drawing(model, mnist_images):
    given = model.parse(mnist_images[:3])
    gens = [torch.Generator().manual_seed(s) for s in (10, 11, 12)]
    batch = model.complete(given, 12, gens)
    alone = model.complete(given[1:2], 12, [torch.Generator().manual_seed(11)])
    assert torch.equal(batch.latents.ids[1:2], alone.latents.ids) and torch.allclose(batch.images[1:2], alone.images)
    again = model.complete(given, 12, torch.Generator().manual_seed(7))
    assert torch.equal(again.images, model.complete(given, 12, torch.Generator().manual_seed(7)).images)


@pytest.mark.parametrize("call, error, message", [
    (lambda m, lat: m.complete(lat, 37), ValueError, r"steps must be an int in \[0, 36\]"),
    (lambda m, lat: m.complete(lat, 3, temperature=0), ValueError, "temperature must be a positive"),
    (lambda m, lat: m.complete(lat.ids, 3), TypeError, "latents must be Latents"),
    (lambda m, lat: m.prior.sample(m.bank, noise(2, 0), prefix=Latents(lat.ids[:1], lat.locs[:1], lat.present[:1])),
     ValueError, r"prefix ids, locs and present must each have shape \(N=2, k\)"),
    (lambda m, lat: m.prior.sample(m.bank, noise(2, 0), prefix=Latents(lat.ids + 50, lat.locs, lat.present)),
     ValueError, r"prefix ids must lie in \[0, 50\)"),
])
def test_completion_rejects_bad_arguments(model, mnist_images, call, error, message):
    latents = model.parse(mnist_images[:2])
    with pytest.raises(error, match=message):
        call(model, latents)


def test_pasting_checks_the_latents_and_canvases_it_is_given(model, mnist_images):
    parsed = model.parse(mnist_images[:2])
    bad = {"present": Latents(parsed.ids, parsed.locs, parsed.present * 2),      # was read as present = 1
           "locs": Latents(parsed.ids, parsed.locs + 36, parsed.present),        # was an IndexError
           "ids": Latents(parsed.ids.float(), parsed.locs, parsed.present)}      # was an einsum RuntimeError
    for field, latents in bad.items():
        with pytest.raises(ValueError, match=f"source {field if field != 'locs' else 'ids'}"):
            paste_latents(model, parsed, latents, cells=[0])
    with pytest.raises(ValueError, match=r"target and source must be canvases of one shape \(N, C, 28, 28\)"):
        paste_canvas(model.grid, torch.rand(2, 1, 5, 28), torch.rand(2, 1, 5, 28), cells=[0])
    canvas = parsed.canvas
    for other in ((canvas * 255).to(torch.uint8), canvas.to("meta")):
        with pytest.raises(ValueError, match="target and source must be floating canvases in \\[0, 1\\] on one device"):
            paste_canvas(model.grid, canvas, other, cells=[0])
    # Indices of any integer dtype draw as int64 ones (uint8 indexed the bank as a mask, int32 failed in one_hot);
    # bool ones are refused
    for dtype in (torch.uint8, torch.int16, torch.int32):
        assert torch.equal(model.render(parsed.ids.to(dtype), parsed.locs.to(dtype), parsed.present), parsed.canvas)
    with pytest.raises(ValueError, match="ids and locs must be integer tensors, got torch.bool"):
        model.render(parsed.ids.bool(), parsed.locs, parsed.present)


def test_step_logits_log_prob_refuses_latents_of_another_shape(model, mnist_images):
    encoded = model.encode(mnist_images[:3])
    for latents in (encoded[:2], Latents(encoded.ids[:, :5], encoded.locs[:, :5], encoded.present[:, :5]),
                    Latents(encoded.ids.float(), encoded.locs, encoded.present)):
        with pytest.raises(ValueError, match=r"must each have the logits' shape \(N, T\) = \(3, 36\)"):
            encoded.logits.log_prob(latents)


def test_numpy_integers_are_ints_for_boxes_and_counts(model, mnist_images):
    box = tuple(np.array(TOP_HALF))
    assert torch.equal(region_cells(model.grid, box=box), region_cells(model.grid, box=TOP_HALF))
    assert interpolate(model, mnist_images[0], mnist_images[1], np.int64(3)).shape == (3, 1, 28, 28)


def test_the_canvas_only_operations_name_the_grid_they_take_when_given_the_model(model, mnist_images):
    # model.md: they take model.grid; the model itself gave AttributeError: 'NPDraw' object has no attribute 'box'
    canvas = model.parse(mnist_images[:2]).canvas
    for call in (lambda: region_cells(model, box=TOP_HALF), lambda: region_pixels(model, cells=[0]),
                 lambda: region_pixels(model, box=TOP_HALF), lambda: paste_canvas(model, canvas, canvas, box=TOP_HALF)):
        with pytest.raises(TypeError, match=r"grid must be a Grid \(model.grid\), got NPDraw"):
            call()
    assert torch.equal(paste_canvas(model.grid, canvas, canvas.flip(0), box=TOP_HALF)[0, :, 14:],
                       canvas[0, :, 14:])


def test_pasting_and_completing_check_the_shape_of_the_latents(model, mnist_images):
    """Latents of another model (fewer steps) were pasted with this model's parts, and one drawing indexed out of a
    batch (latents[0], 1-D) was a bare IndexError in complete."""
    parsed = model.parse(mnist_images[:2])
    short = Latents(parsed.ids[:, :20], parsed.locs[:, :20], parsed.present[:, :20])
    with pytest.raises(ValueError, match=r"source must have the model's T=36 steps, got 20"):
        paste_latents(model, parsed, short, cells=[0])
    with pytest.raises(ValueError, match=r"latents ids, locs and present must each have shape \(N, k\)"):
        model.complete(parsed[0], 5)
    with pytest.raises(ValueError, match=r"latents ids must lie in \[0, 50\)"):
        model.complete(Latents(parsed.ids + 50, parsed.locs, parsed.present), 5)


def test_a_paste_of_a_region_with_no_cell_is_refused(model, mnist_images):
    """A box too small to hold more than half of any cell selected nothing, and the target came back unchanged
    without a word."""
    parsed = model.parse(mnist_images[:2])
    with pytest.raises(ValueError, match=r"the region selects no cell \(cells=None, box=\(0, 0, 1, 1\)\)"):
        paste_latents(model, parsed, parsed, box=(0, 0, 1, 1))


def test_a_canvas_paste_of_a_region_with_no_pixel_is_refused(model, mnist_images):
    """paste_latents refuses a region with no cell, but paste_canvas gave the target back unchanged for cells=[] or
    an all-False mask, without a word."""
    canvas = model.parse(mnist_images[:2]).canvas
    for cells in ([], torch.zeros(36, dtype=torch.bool)):
        with pytest.raises(ValueError, match=r"the region covers no canvas pixel \(cells="):
            paste_canvas(model.grid, canvas, canvas.flip(0), cells=cells)
    # One pixel is a region: the box needs no whole cell
    pasted = paste_canvas(model.grid, canvas, canvas.flip(0), box=(0, 0, 1, 1))
    assert torch.equal(pasted[:, :, 0, 0], canvas.flip(0)[:, :, 0, 0]) and torch.equal(pasted[:, :, 1:], canvas[:, :, 1:])


def test_pasting_takes_latents_of_any_integer_dtype(model, mnist_images):
    """Latents.check takes ids and locs of any integer dtype, but the region was indexed with the locs as they came:
    uint8 locs indexed it as a mask, int8 and int16 not at all (an IndexError either way)."""
    target, source = model.parse(mnist_images[:2]), model.parse(mnist_images[2:4])
    expected = paste_latents(model, target, source, box=TOP_HALF)
    for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32):
        cast = [Latents(z.ids.to(dtype), z.locs.to(dtype), z.present) for z in (target, source)]
        pasted = paste_latents(model, *cast, box=TOP_HALF)
        assert torch.equal(pasted.canvas, expected.canvas) and torch.equal(pasted.ids.long(), expected.ids)
