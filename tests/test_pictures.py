import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import random_model
from PIL import Image

from np_draw import Latents
from np_draw.pictures import (
    RED,
    comparison_image,
    drawing_frames,
    drawing_strip,
    part_bank_image,
    reconstruction_image,
    save_drawing_gif,
)


@pytest.fixture(scope="module")
def model():
    return random_model("mnist")


def pixels(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1) / 255


def enlarge(images: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, 1, H, W) grey -> (N, 3, H*scale, W*scale), each pixel a scale x scale square."""
    return images.repeat_interleave(scale, -2).repeat_interleave(scale, -1).expand(-1, 3, -1, -1)


def cell_box(loc: int, scale: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) in enlarged pixels of MNIST grid cell ``loc`` (6 x 6 cells of 5 px, 1 px padding,
    clipped at the 28 px canvas), bottom/right exclusive."""
    row, col = divmod(loc, 6)
    top, left = row * 5 - 1, col * 5 - 1
    return (max(top, 0) * scale, min(top + 5, 28) * scale, max(left, 0) * scale, min(left + 5, 28) * scale)


def test_part_bank_image_tiles_every_part_enlarged_with_separators(model):
    image = part_bank_image(model.bank, scale=3, separator=1)
    # B = 50 parts of 5 px: 10 per row, 5 rows, each tile 15 px plus 1 px lines.
    assert image.size == (10 * 16 + 1, 5 * 16 + 1) and image.mode == "RGB"
    tiles = pixels(image)
    for i in (0, 17, 49):
        top, left = 1 + (i // 10) * 16, 1 + (i % 10) * 16
        expected = enlarge(model.bank.parts[i:i + 1], 3)[0]
        assert torch.allclose(tiles[:, top:top + 15, left:left + 15], expected, atol=1 / 255)
        assert (tiles[:, top - 1, left:left + 15] == 1).all()  # the white line above each tile
    assert part_bank_image(model.bank.parts[:7], scale=1).size == (3 * 6 + 1, 3 * 6 + 1)


def test_frames_show_the_canvas_after_each_drawn_step_with_the_pasted_cell_outlined(model, mnist_images):
    latents = model.parse(mnist_images[:2])
    scale = 4
    frames = drawing_frames(model, latents, index=1, scale=scale, final=True)
    drawn = latents.present[1].nonzero()[:, 0].tolist()
    assert frames.shape == (len(drawn) + 1, 3, 28 * scale, 28 * scale)
    red = torch.tensor(RED)[:, None, None]
    for frame, step in zip(frames, drawn):
        outline = (frame == red).all(0)
        top, bottom, left, right = cell_box(int(latents.locs[1, step]), scale)
        rows, cols = outline.any(1).nonzero()[:, 0], outline.any(0).nonzero()[:, 0]
        assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (top, bottom, left, right)
        assert outline[top, left:right].all() and outline[top:bottom, right - 1].all()
        # Everywhere else the frame is the canvas of steps 0..step alone.
        upto = latents.present[1:2] * (torch.arange(36) <= step)
        canvas = enlarge(model.render(latents.ids[1:2], latents.locs[1:2], upto), scale)[0]
        assert torch.allclose(frame[:, ~outline], canvas[:, ~outline])
    assert torch.allclose(frames[-1], enlarge(model.decode(latents[1:2]), scale)[0])
    assert drawing_frames(model, latents, index=-1, scale=scale, final=False).shape[0] == len(drawn)


def test_gif_and_strip_hold_one_frame_per_drawn_step_and_the_decoded_image(model, mnist_images, tmp_path):
    latents = model.parse(mnist_images[:1])
    count = int(latents.present.sum()) + 1
    path = save_drawing_gif(model, latents, tmp_path / "drawing.gif", scale=3, step_ms=100, final_ms=900)
    with Image.open(path) as gif:
        assert gif.n_frames == count and gif.size == (84, 84) and gif.info["loop"] == 0
        gif.seek(0)
        assert gif.info["duration"] == 100
        first = pixels(gif.convert("RGB"))
        top, _bottom, left, right = cell_box(int(latents.locs[0, latents.present[0].argmax()]), 3)
        # The palette keeps the outline red: strong red, weak green, on the box's top edge.
        assert (first[0, top, left:right] > 0.9).all() and (first[1, top, left:right] < 0.3).all()
        gif.seek(count - 1)
        assert gif.info["duration"] == 900
    strip = drawing_strip(model, latents, scale=2, separator=1)
    assert strip.size == (count * (56 + 1) + 1, 56 + 2)


def test_comparison_and_reconstruction_images_put_one_image_per_row(model, mnist_images):
    images = mnist_images[:3]
    picture = reconstruction_image(model, images, scale=2, separator=2)
    assert picture.size == (3 * 58 + 2, 3 * 58 + 2)
    tiles = pixels(picture)
    expected = [images, model.parse(images).canvas, model.reconstruct(images)]
    for row in range(3):
        for column, batch in enumerate(expected):
            top, left = 2 + row * 58, 2 + column * 58
            assert torch.allclose(tiles[:, top:top + 56, left:left + 56], enlarge(batch[row:row + 1], 2)[0],
                                  atol=1 / 255)
    # Columns of different sizes are enlarged to the largest one.
    mixed = comparison_image([torch.zeros(2, 1, 14, 14), torch.ones(2, 3, 28, 28)], scale=1, separator=0)
    assert mixed.size == (56, 56)
    # Images in the forms the model takes (PIL images, NHWC), as the rest of the API does; arrays named as such
    from np_draw.images import to_pil

    assert pixels(reconstruction_image(model, to_pil(images))).equal(pixels(picture))
    assert pixels(reconstruction_image(model, images.permute(0, 2, 3, 1))).equal(pixels(picture))
    with pytest.raises(TypeError, match=r"columns must be image tensors \(N, C, H, W\), got \['ndarray'\]"):
        comparison_image([images.numpy()])


def test_uint8_columns_and_parts_make_the_pictures_of_their_floats_and_out_of_range_floats_warn(model, mnist_images,
                                                                                                  caplog):
    """_enlarge took uint8 as floats 0..255, which make_grid clamped to an all-white picture in silence (make_grid,
    save_grid and save_pairs take uint8); floats outside [0, 1], uint8 levels as floats among them, were clamped in
    silence too."""
    from np_draw.images import make_grid, to_pil

    floats = mnist_images[:3]
    uint8 = (floats * 255).round().to(torch.uint8)
    assert pixels(comparison_image([uint8, floats])).equal(pixels(comparison_image([floats, floats])))
    assert pixels(part_bank_image(uint8)).equal(pixels(part_bank_image(floats)))
    with caplog.at_level(logging.WARNING, logger="np_draw.images"):
        make_grid(floats)
        to_pil(model.decode(model.encode(floats)))  # the model's own outputs are in [0, 1]
        assert not caplog.text
        make_grid(uint8.float())
    assert "images to draw must be uint8 or float in [0, 1], got floats in [0, 255]" in caplog.text
    assert "divide uint8 levels held as floats by 255" in caplog.text


@pytest.mark.parametrize("call, message", [
    (lambda m, lat: drawing_frames(m, lat, index=5), "index must be an int in"),
    (lambda m, lat: drawing_frames(m, lat, scale=0), "scale must be a positive int"),
    (lambda m, lat: drawing_frames(m, lat, colour=(2, 0, 0)), "colour must be three floats"),
    (lambda m, lat: drawing_frames(m, lat.ids), "latents must be Latents"),
    (lambda m, lat: drawing_frames(m, Latents(lat.ids, lat.locs, lat.present * 0), final=False), "draws nothing"),
    (lambda m, lat: part_bank_image(torch.zeros(3, 2, 5, 5)), "bank must be a PartBank or a"),
    # No part: a ZeroDivisionError choosing the parts per row
    (lambda m, lat: part_bank_image(torch.zeros(0, 1, 5, 5)), r"bank must be .* B >= 1 .*got Tensor \(0, 1, 5, 5\)"),
    (lambda m, lat: comparison_image([torch.zeros(2, 1, 4, 4), torch.zeros(3, 1, 4, 4)]), "one N"),
    # A 0-d column: its shape[0] was an IndexError before the (N, C, H, W) check
    (lambda m, lat: comparison_image([torch.tensor(0.5)]), r"one or more \(N, C, H, W\) batches"),
    # A generator of tensors was refused as "image tensors ... got ['Tensor']"
    (lambda m, lat: comparison_image(c for c in [torch.zeros(2, 1, 4, 4)]), "a list of image tensors .* got generator"),
])
def test_bad_arguments_raise_clear_errors(model, mnist_images, call, message):
    latents = model.parse(mnist_images[:2])
    with pytest.raises((ValueError, TypeError), match=message):
        call(model, latents)


@pytest.mark.parametrize("columns", [
    [torch.zeros(0, 1, 4, 4)],  # named make_grid's 'images' and the tiled batch's shape (0, 3, 8, 8)
    [torch.zeros(2, 1, 4, 4), torch.zeros(2, 2, 4, 4)],  # the same, of shape (4, 2, 8, 8)
    [torch.zeros(2, 1, 4, 8)],  # squeezed into square tiles without a word
])
def test_comparison_image_names_the_columns_of_a_shape_it_cannot_show(columns):
    shapes = str([tuple(c.shape) for c in columns]).replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    with pytest.raises(ValueError, match=r"columns must be batches \(N, C, H, W\) of N >= 1 square images \(H = W\), "
                                         r"C in \(1, 3\), got shapes " + shapes):
        comparison_image(columns)


@pytest.mark.parametrize("call, given", [
    (lambda m, lat: comparison_image([lat.canvas], scale=10**6), "scale=1000000, separator=2 make a picture"),
    (lambda m, lat: comparison_image([lat.canvas], separator=10**7), "scale=2, separator=10000000 make a picture"),
    (lambda m, lat: part_bank_image(m.bank, scale=10**5), "scale=100000, separator=1 make a picture"),
    (lambda m, lat: drawing_frames(m, lat, scale=10**5), "scale=100000 makes frames"),
    (lambda m, lat: drawing_strip(m, lat, separator=10**7), "scale=2, separator=10000000 make a picture"),
])
def test_a_picture_too_large_to_read_back_is_refused_before_it_is_drawn(model, mnist_images, call, given):
    """A huge scale or separator was torch's error allocating terabytes, or took the machine's memory."""
    with pytest.raises(ValueError, match=given + r" of [\d,]+ pixels, more than twice Pillow's limit"):
        call(model, model.parse(mnist_images[:1]))


def test_frames_of_a_sampled_drawing_follow_its_locations(model):
    out = model.sample(1, torch.Generator().manual_seed(3), progress=False)
    frames = drawing_frames(model, out.latents, scale=2, final=False)
    drawn = out.latents.present[0].nonzero()[:, 0]
    assert frames.shape[0] == len(drawn) > 0
    red = torch.tensor(RED)[:, None, None]
    last = (frames[-1] == red).all(0)
    top, bottom, left, right = cell_box(int(out.latents.locs[0, drawn[-1]]), 2)
    assert last[top:bottom, left:right].any() and not last[:top].any() and not last[bottom:].any()
    final = F.interpolate(out.latents.canvas, scale_factor=2.0)
    assert torch.allclose(frames[-1][0][~last], final[0, 0][~last])


def test_drawing_frames_check_the_latents_and_take_numpy_indices(model, mnist_images):
    """Ids or cells out of range were an IndexError or a one_hot RuntimeError, and one drawing (latents[0]) an
    IndexError; a NumPy integer index was refused where the rest of the package takes it."""
    parsed = model.parse(mnist_images[:2])
    for bad in (Latents(parsed.ids + 50, parsed.locs, parsed.present),
                Latents(parsed.ids, parsed.locs + 36, parsed.present)):
        with pytest.raises(ValueError, match=r"latents ids must lie in \[0, 50\) and locs in \[0, 36\)"):
            drawing_frames(model, bad, scale=1)
    with pytest.raises(ValueError, match=r"must each have shape \(N, k\)"):
        drawing_frames(model, parsed[0], scale=1)
    assert torch.equal(drawing_frames(model, parsed, np.int64(1), scale=1), drawing_frames(model, parsed, 1, scale=1))


def test_drawing_frames_take_latents_of_any_integer_dtype(model, mnist_images):
    """Latents.check and render take ids and locs of any integer dtype, but the outlines' one_hot took int64 only:
    int32 (or uint8, int16) locs were a RuntimeError."""
    parsed = model.parse(mnist_images[:2])
    expected = drawing_frames(model, parsed, 1, scale=1)
    for dtype in (torch.int32, torch.int16, torch.uint8):
        latents = Latents(parsed.ids.to(dtype), parsed.locs.to(dtype), parsed.present)
        assert torch.equal(drawing_frames(model, latents, 1, scale=1), expected)


def test_a_step_at_a_cell_wholly_past_the_canvas_gets_its_frame_without_an_outline():
    """A grid whose padding reaches a whole part past the canvas (a valid config) has cells with no pixel on it: the
    outline of a step there read the first row of an empty box, an IndexError."""
    model = random_model("mnist", padding=6, grid_size=8)  # 8 cells of 5 px every 5 px from -6: cell 0 is off-canvas
    steps = model.config.num_steps
    latents = Latents(torch.zeros(1, steps, dtype=torch.long), torch.arange(steps)[None], torch.ones(1, steps))
    frames = drawing_frames(model, latents, scale=1, final=False)
    assert frames.shape[0] == steps and torch.equal(frames[0], torch.zeros_like(frames[0]))


@pytest.mark.parametrize("call", [
    lambda m, lat: part_bank_image(m.bank, separator=-1),
    lambda m, lat: drawing_strip(m, lat, separator=-1),
    lambda m, lat: comparison_image([lat.canvas], separator=1.5),
    lambda m, lat: reconstruction_image(m, lat.canvas, separator=True),
])
def test_a_bad_separator_is_named_as_the_argument_given(model, mnist_images, call):
    """A negative separator was refused as make_grid's 'padding', an argument the caller never gave."""
    with pytest.raises(ValueError, match="separator must be a non-negative integer"):
        call(model, model.parse(mnist_images[:1]))
