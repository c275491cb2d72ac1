"""Pictures of what the model does: its part bank, a drawing step by step (an animated GIF or a strip), and
reconstructions beside their originals.

Every picture is a PIL image, built from image tensors (float NCHW in [0, 1]) with :mod:`np_draw.images`. A drawing
is shown on its canvas, enlarged ``scale`` times with square pixels; each step's frame outlines the box of the part
pasted at that step in ``colour``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from PIL import Image

from .bank import PartBank
from .canvas import running_max
from .errors import InvalidInputError, InvalidTypeError, UnwritablePathError, check_count, check_flags, check_path
from .images import make_grid, to_pil
from .latents import Latents
from .model import NPDraw, check_model, place

RED = (1.0, 0.15, 0.15)


def _enlarge(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) uint8 or float in [0, 1] -> (N, 3, size, size) float: square pixels (nearest neighbour), grey
    repeated into RGB."""
    images = images.detach().cpu()
    # uint8 scaled as make_grid scales it: taken as floats, its levels 0..255 were clamped to an all-white picture
    images = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    images = F.interpolate(images, size=(size, size), mode="nearest-exact")
    # contiguous: repeat may return an expanded view, whose channels share memory and could not be painted apart.
    return repeat(images, "n 1 h w -> n 3 h w").contiguous() if images.shape[1] == 1 else images


def _check_size(pixels: int, what: str, **given: int) -> None:
    """Refuse ``what`` (a picture, or frames) of more than twice PIL.Image.MAX_IMAGE_PIXELS in all before it is
    drawn: a huge ``scale`` or ``separator`` was torch's allocation error of terabytes (or took the machine's
    memory), and a picture Pillow refuses to decode is no use saved. ``given``: the arguments that set its size."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and pixels > 2 * limit:
        arguments = ", ".join(f"{name}={value}" for name, value in given.items())
        raise InvalidInputError(f"{arguments} make{'s' if len(given) == 1 else ''} {what} of {pixels:,} pixels, more "
                                f"than twice Pillow's limit of "
                                f"{limit:,} (PIL.Image.MAX_IMAGE_PIXELS), which Pillow refuses to decode: give a "
                                f"smaller {' or '.join(given)}")


def _check_grid(count: int, nrow: int, side: int, *, scale: int, separator: int) -> None:
    """:func:`_check_size` of the picture :func:`np_draw.images.make_grid` makes of ``count`` square tiles of
    ``side`` px, ``nrow`` per row, ``separator`` px apart."""
    nrow = min(nrow, count)
    pixels = (math.ceil(count / nrow) * (side + separator) + separator) * (nrow * (side + separator) + separator)
    _check_size(pixels, "a picture", scale=scale, separator=separator)


def part_bank_image(bank: PartBank | torch.Tensor, *, scale: int = 4, separator: int = 1,
                    nrow: int | None = None) -> Image.Image:
    """All B parts of a bank, tiled and enlarged, separated by thin white lines.

    Args:
        bank: a :class:`PartBank` or its parts (B, C, K, K), uint8 or float in [0, 1].
        scale: each part pixel becomes ``scale`` x ``scale`` pixels.
        separator: width of the white lines between parts, in pixels.
        nrow: parts per row; default: the smallest divisor of B from √B to 2√B (full rows: 10 for B = 50, 20
            for B = 200), else ⌈√B⌉.
    Returns:
        An RGB image (mode "RGB").
    """
    parts = bank.parts if isinstance(bank, PartBank) else bank
    # No part (B = 0) was a ZeroDivisionError choosing nrow
    if not isinstance(parts, torch.Tensor) or parts.ndim != 4 or parts.shape[1] not in (1, 3) or not len(parts):
        raise InvalidInputError(f"bank must be a PartBank or a (B, C, K, K) tensor with B >= 1 and C in (1, 3), "
                                f"got {type(parts).__name__} {tuple(getattr(parts, 'shape', ()))}")
    count = parts.shape[0]
    if nrow is None:
        square = math.ceil(math.sqrt(count))
        nrow = next((d for d in range(square, 2 * square + 1) if count % d == 0), square)
    scale, separator = check_count(scale, "scale"), check_count(separator, "separator", least=0)
    _check_grid(count, check_count(nrow, "nrow"), parts.shape[-1] * scale, scale=scale, separator=separator)
    return make_grid(_enlarge(parts, parts.shape[-1] * scale), nrow=nrow, padding=separator)


def drawing_frames(model: NPDraw, latents: Latents, index: int = 0, *, scale: int = 8, final: bool = True,
                   colour: tuple[float, float, float] = RED) -> torch.Tensor:
    """The canvas of one drawing after each of its drawn steps, the pasted part's box outlined.

    Args:
        model: the model whose part bank and grid the latents index (and whose decoder makes the last frame).
        latents: from :meth:`NPDraw.sample` (``.latents``), :meth:`NPDraw.encode` or :meth:`NPDraw.parse`.
        index: which drawing of the batch.
        scale: each canvas pixel becomes ``scale`` x ``scale`` pixels.
        final: append the decoded image (resized to the canvas frames' size) as the last frame.
        colour: RGB in [0, 1] of the box outline, drawn 1 pixel wide (``scale // 8`` from scale 16 up) along the
            inside of the box, clipped to the canvas.
    Returns:
        (F, 3, S·scale, S·scale) float in [0, 1], F = the number of drawn steps (z_is = 1), plus one if ``final``.
        Steps with z_is = 0 paste nothing and get no frame.
    """
    check_model(model)
    if not isinstance(latents, Latents):
        raise InvalidTypeError(f"latents must be Latents, got {type(latents).__name__}")
    check_flags(final=final)  # a string such as "no" counted as True
    # (N, T) steps of this model's parts and cells: one drawing (latents[0]), ids or cells out of range were an
    # IndexError or a one_hot RuntimeError
    latents.check(num_parts=model.config.num_parts, num_steps=model.config.num_steps)
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) \
            or not -len(latents) <= index < len(latents):
        raise InvalidInputError(f"index must be an int in [-{len(latents)}, {len(latents)}), got {index!r}")
    index = int(index)
    try:  # a tuple, list or array of three numbers; not a name
        rgb = [] if isinstance(colour, str) else [float(c) for c in colour]
    except (TypeError, ValueError):
        rgb = []
    if len(rgb) != 3 or not all(0 <= c <= 1 for c in rgb):
        raise InvalidInputError(f"colour must be three floats in [0, 1] (RGB), got {colour!r}")
    scale = check_count(scale, "scale")
    size = model.grid.canvas_size * scale
    index %= len(latents)
    one = latents[index:index + 1].to(model.device)
    placed = place(model.bank, model.grid, one.ids, one.locs, one.present)
    drawn = one.present[0].nonzero()[:, 0]
    if not final and drawn.numel() == 0:
        raise InvalidInputError(f"drawing {index} draws nothing (z_is = 0 at every step): with final=False it has "
                                "no frame")
    _check_size((drawn.numel() + final) * size * size, "frames", scale=scale)  # all of them: a GIF holds them
    frames = _enlarge(running_max(placed)[0, drawn], size)
    # int64 for one_hot whatever the latents' integer dtype (int32 locs were a RuntimeError)
    locations = F.one_hot(one.locs.long(), model.grid.num_cells).to(placed)
    boxes = model.grid.box(locations, one.present.to(placed))[0, drawn, 0]
    width = max(1, scale // 8)
    paint = torch.tensor(rgb)[:, None, None]
    for frame, box in zip(frames, boxes):
        rows, cols = box.any(1).nonzero()[:, 0], box.any(0).nonzero()[:, 0]
        if rows.numel() == 0:  # a cell wholly past the canvas's edge (padding >= part size): nothing to outline
            continue
        top, bottom = int(rows[0]) * scale, (int(rows[-1]) + 1) * scale
        left, right = int(cols[0]) * scale, (int(cols[-1]) + 1) * scale
        for edge in (frame[:, top:top + width, left:right], frame[:, bottom - width:bottom, left:right],
                     frame[:, top:bottom, left:left + width], frame[:, top:bottom, right - width:right]):
            edge.copy_(paint)
    if final:
        frames = torch.cat([frames, _enlarge(model.decode(one), size)])
    return frames


def save_drawing_gif(model: NPDraw, latents: Latents, path: str | Path, index: int = 0, *, scale: int = 8,
                     final: bool = True, step_ms: int = 150, final_ms: int = 1200) -> Path:
    """Save one drawing as an animated GIF: :func:`drawing_frames`, looping forever.

    Args:
        model, latents, index, scale, final: as in :func:`drawing_frames`.
        path: the ``.gif`` file to write, in a folder that exists.
        step_ms: how long each step's frame shows, in milliseconds.
        final_ms: how long the last frame (the decoded image, with ``final``) shows.
    Returns:
        The path. GIF writers merge identical consecutive frames (a part pasted twice on one cell may add none).
    """
    for name, value in (("step_ms", step_ms), ("final_ms", final_ms)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
            raise InvalidInputError(f"{name} must be a positive number of milliseconds, got {value!r}")
    path = check_path(path)
    if path.suffix.lower() != ".gif":
        raise InvalidInputError(f"path must name a .gif file, got {str(path)!r}")
    frames = to_pil(drawing_frames(model, latents, index, scale=scale, final=final))
    durations = [step_ms] * (len(frames) - 1) + [final_ms]
    try:
        frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    except OSError as error:  # a missing folder, a read-only file
        raise UnwritablePathError(f"cannot write {str(path)!r}: {error}") from error
    return path


def drawing_strip(model: NPDraw, latents: Latents, index: int = 0, *, scale: int = 2, final: bool = True,
                  separator: int = 1) -> Image.Image:
    """One drawing as a single row of its frames (:func:`drawing_frames`), left to right, white separators.

    Returns:
        An RGB image F·(S·scale + separator) + separator pixels wide.
    """
    separator = check_count(separator, "separator", least=0)
    frames = drawing_frames(model, latents, index, scale=scale, final=final)
    _check_grid(len(frames), len(frames), frames.shape[-1], scale=scale, separator=separator)
    return make_grid(frames, nrow=len(frames), padding=separator)


def comparison_image(columns: Sequence[torch.Tensor], *, scale: int = 2, separator: int = 2) -> Image.Image:
    """Image batches side by side: row i shows image i of every batch, one batch per column.

    Args:
        columns: batches (N, C, H, W), uint8 or float in [0, 1], of one N; sizes and channels may differ (canvases
            beside images): each is enlarged to the largest size times ``scale``, grey shown as RGB.
        scale: enlargement of the largest size.
        separator: white pixels between images.
    Returns:
        An RGB image of N rows and len(columns) columns.
    """
    if not isinstance(columns, Sequence) or not all(isinstance(c, torch.Tensor) for c in columns):
        if isinstance(columns, torch.Tensor):  # iterating a stacked batch took each image for a column
            raise InvalidTypeError(f"columns must be a list of image batches (N, C, H, W), got one tensor of shape "
                                   f"{tuple(columns.shape)}: pass list(columns)")
        if not isinstance(columns, Sequence):  # the types of a generator's or a dict's items named what was right
            raise InvalidTypeError(f"columns must be a list of image tensors (N, C, H, W), got "
                                   f"{type(columns).__name__}")
        raise InvalidTypeError(f"columns must be image tensors (N, C, H, W), got "
                               f"{sorted({type(c).__name__ for c in columns})}")
    if not columns or any(c.ndim != 4 for c in columns) or len({c.shape[0] for c in columns}) != 1:
        raise InvalidInputError(f"columns must be one or more (N, C, H, W) batches of one N, got shapes "
                                f"{[tuple(c.shape) for c in columns]}")
    # Checked here, on the shapes given: make_grid named its own 'images' and the shape of the tiled batch, and a
    # non-square batch was squeezed into square tiles without a word
    if not columns[0].shape[0] or any(c.shape[1] not in (1, 3) or c.shape[-1] != c.shape[-2] for c in columns):
        raise InvalidInputError(f"columns must be batches (N, C, H, W) of N >= 1 square images (H = W), C in (1, 3), "
                                f"got shapes {[tuple(c.shape) for c in columns]}")
    scale, separator = check_count(scale, "scale"), check_count(separator, "separator", least=0)
    size = max(c.shape[-1] for c in columns) * scale
    _check_grid(columns[0].shape[0] * len(columns), len(columns), size, scale=scale, separator=separator)
    tiles = torch.stack([_enlarge(c, size) for c in columns])
    return make_grid(rearrange(tiles, "k n c h w -> (n k) c h w"), nrow=len(columns), padding=separator)


def reconstruction_image(model: NPDraw, images: torch.Tensor, *, scale: int = 2,
                         separator: int = 2) -> Image.Image:
    """Originals | their parse's canvas | the model's reconstruction ``decode(encode(x))``, one image per row.

    Args:
        model: the model.
        images: in any form :meth:`NPDraw.parse` takes ((N, C, H, W) uint8 or float in [0, 1], NHWC, PIL images, a
            folder...).
        scale, separator: as in :func:`comparison_image`.
    Returns:
        An RGB image of N rows and 3 columns.
    """
    check_model(model)
    originals = model.prepare_images(images)
    return comparison_image([originals, model.parse(originals).canvas, model.reconstruct(originals)],
                            scale=scale, separator=separator)
