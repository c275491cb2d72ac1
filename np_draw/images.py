"""Image tensors in and out: what users pass (tensors and arrays in any layout, PIL images, folders of files, torch
and Hugging Face datasets) checked and turned into float NCHW in [0, 1], held in memory or read a batch at a time as
an :class:`ImageSource`; and tensors turned into PIL images and grid pictures."""

from __future__ import annotations

import abc
import hashlib
import logging
import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from einops import rearrange
from PIL import Image, ImageChops, ImageOps, ImageStat, UnidentifiedImageError
from tqdm.auto import tqdm

from .errors import (
    InvalidInputError,
    InvalidTypeError,
    MissingFileError,
    UnwritablePathError,
    check_channels,
    check_count,
    check_flags,
    check_path,
)
from .memory import physical_memory
from .model_files import write_together

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Aligned CelebA photos (width, height), and the centre the paper (and the celeba model) frames them to
_ALIGNED_CELEBA, CELEBA_CROP = (178, 218), 148


def check_images(images: Any, *, channels: int, size: int, name: str = "images") -> torch.Tensor:
    """Validate an image batch and return it as a float tensor in [0, 1].

    Args:
        images: (N, C, H, W) torch tensor or NumPy array; uint8 (0..255, scaled to [0, 1]) or floating point
            in [0, 1].
        channels, size: the C and H = W the model expects.
        name: the argument's name, used in error messages.
    Returns:
        (N, C, H, W) floating tensor (float32 unless the input was a floating tensor already).
    Raises:
        InvalidTypeError: not a tensor/array, or a dtype that is neither uint8 nor floating.
        InvalidInputError: wrong shape, an empty batch, NaN/inf, or floats outside [0, 1].
    """
    if isinstance(images, np.ndarray):
        images = _from_numpy(images, name)
    if not isinstance(images, torch.Tensor):
        raise InvalidTypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(images).__name__}")
    _check_data(images, name)
    if images.ndim != 4 or tuple(images.shape[1:]) != (channels, size, size):
        one = ": for one image, give a batch of one (images[None, None])" if images.ndim == 2 and channels == 1 else ""
        raise InvalidInputError(f"{name} must have shape (N, {channels}, {size}, {size}) (NCHW), got "
                                f"{tuple(images.shape)}{one}")
    if images.shape[0] == 0:
        raise InvalidInputError(f"{name} must hold at least one image, got an empty batch of shape "
                                f"{tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise InvalidTypeError(f"{name} must be uint8 (0..255) or floating point in [0, 1], got dtype {images.dtype}")
    low, high = (value.item() for value in torch.aminmax(images))  # one pass: NaN and inf show in the extremes
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidInputError(f"{name} must be finite, got {int((~torch.isfinite(images)).sum())} NaN or inf values")
    if low < 0 or high > 1:
        raise InvalidInputError(f"{name} must lie in [0, 1] (floats) or be uint8, got values in "
                                f"[{low:.4g}, {high:.4g}]")
    return images


def _from_numpy(array: np.ndarray, name: str) -> torch.Tensor:
    """A NumPy array of numbers as a tensor; one of objects, strings, records or dates (which torch cannot hold) is
    an :class:`InvalidTypeError` naming ``name``, not torch's list of the dtypes it converts."""
    if array.dtype.kind not in "biufc":
        raise InvalidTypeError(f"{name} must be uint8 (0..255) or floating point in [0, 1], got a NumPy array of "
                               f"dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _check_data(images: torch.Tensor, name: str) -> None:
    """Refuse a tensor whose values cannot be read: a sparse one, or one on the 'meta' device (shapes without data),
    which failed inside the value checks with torch's error."""
    if images.layout != torch.strided:
        raise InvalidTypeError(f"{name} must be a dense tensor, got layout {images.layout}: call .to_dense() first")
    if images.device.type == "meta":
        raise InvalidInputError(f"{name} is on the 'meta' device, which holds shapes without data; give images on "
                                "a device that computes, such as 'cpu' or 'cuda'")


def to_canvas(images: torch.Tensor, canvas_size: int) -> torch.Tensor:
    """Images (N, C, H, W) -> the canvas resolution (N, C, S, S) by averaging H/S x H/S blocks."""
    factor = images.shape[-1] // canvas_size
    return images if factor == 1 else torch.nn.functional.avg_pool2d(images, factor)


# Channels that differ by at most this many of 255 levels are grey: a grey image saved in a lossy colour format
# (JPEG, WebP) comes back with its channels a few levels apart.
GREY_TOLERANCE = 8


def is_colour(image: Image.Image) -> bool:
    """Whether a PIL image has colour: an RGB(A), CMYK or palette image whose channels differ somewhere by more than
    ``GREY_TOLERANCE`` levels."""
    if _grey_mode(image):
        return False
    red, green, blue = image.convert("RGB").split()
    return any(ImageChops.difference(red, other).getextrema()[1] > GREY_TOLERANCE for other in (green, blue))


def _grey_mode(image: Image.Image) -> bool:
    return image.mode in ("1", "L", "LA", "I", "F") or image.mode.startswith("I;16")


def _eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit or float grey image scaled to 8-bit "L" (Pillow's own conversion clips levels above 255 to white and
    truncates floats). Mode "I" does not say its depth: it is taken as 16-bit when a value exceeds 255 (a very dark
    16-bit image is read too bright). Mode "F" is taken as [0, 1] (as this package's tensors) when no value exceeds
    1, else as 0..255."""
    if image.mode not in ("F", "I") and not image.mode.startswith("I;16"):
        return image
    levels = np.asarray(image, dtype=np.float64)
    high = levels.max(initial=0)
    if image.mode == "F":
        levels = levels * 255 if high <= 1 else levels
    elif image.mode != "I" or high > 255:
        levels = levels / 257
    return Image.fromarray(levels.clip(0, 255).round().astype(np.uint8), "L")


def _check_pil_image(image: Image.Image, channels: int, name: str) -> None:
    """Refuse an image that would otherwise be read as another picture: one without pixels (read as blank), a float
    or 32-bit one with levels a tensor may not hold (:func:`_eight_bit` reads NaN as black and inf as white, and
    clips negative levels), and a colour image for a grey model (``channels`` 1), whose colour would be dropped."""
    if image.width == 0 or image.height == 0:
        raise InvalidInputError(f"{name} must be an image of at least 1x1 px, got one of {image.width}x"
                                f"{image.height} px ({image.mode}): it has no pixels")
    if image.mode in ("F", "I"):
        levels = np.asarray(image)
        if not np.isfinite(levels).all():
            raise InvalidInputError(f"{name} must be finite, got {int((~np.isfinite(levels)).sum())} NaN or inf "
                                    f"values in a {image.width}x{image.height} px {image.mode} image")
        if levels.min() < 0:
            raise InvalidInputError(f"{name} must have levels of 0 or more (0..1 or 0..255 for a float image), got "
                                    f"values in [{levels.min():.4g}, {levels.max():.4g}] in a {image.width}x"
                                    f"{image.height} px {image.mode} image")
        if image.mode == "F" and 1 < levels.max() < 2:
            # Read as 0..255, a [0, 1] image that a resize pushed a little past 1 came out black
            raise InvalidInputError(f"{name} is a float image whose levels reach {levels.max():.4g}: neither [0, 1] "
                                    "nor 0..255; clip it to [0, 1] (or scale it to 0..255) first")
    if channels == 1 and is_colour(image):
        raise InvalidInputError(f"{name} is a colour image ({image.width}x{image.height} {image.mode}) but the model "
                                "takes grey images (channels=1); use a colour model (a cifar10 or celeba preset or "
                                "checkpoint), or convert the images to grey first")


def _checked(images: Iterable[Image.Image | tuple[str, Image.Image]], channels: int, size: int,
             name: str = "") -> Iterator[tuple[str, Image.Image]]:
    """The (label, image) pairs of ``images`` (a bare image is "image i"), each checked (:func:`_check_pil_image`);
    once all are read, one info line for each kind of change that reading them at ``size`` px and ``channels`` made
    to any, and for a grey model a warning when most images are light (dark drawings on white). ``name`` (a folder)
    starts the lines."""
    total = resized = enlarged = widened = transparent = faces = light = 0
    smallest = size
    for i, item in enumerate(images):
        label, image = item if isinstance(item, tuple) else (f"image {i}", item)
        if not isinstance(image, Image.Image):  # an AttributeError from inside the checks before
            raise InvalidTypeError(f"{label} must be a PIL image, got {type(image).__name__}")
        _check_pil_image(image, channels, label)
        total += 1
        resized += image.size != (size, size)
        # Scanned or drawn on paper, a drawing is dark ink on white: the grey data sets (and models) are the reverse
        light += channels == 1 and ImageStat.Stat(_eight_bit(image).convert("L")).mean[0] > 127.5
        enlarged += min(image.size) < size
        smallest = min(smallest, *image.size)
        # By mode: an RGB image whose channels are nearly equal keeps its own three (a palette's are its colours)
        widened += channels == 3 and (_grey_mode(image) or image.mode == "P" and not is_colour(image))
        transparent += image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
        faces += channels == 3 and size == 64 and image.size == _ALIGNED_CELEBA
        yield label, image

    def log(count: int, text: str, *args: int) -> None:
        if count:
            logger.info("%s%d of %d images " + text, f"{name}: " if name else "", count, total, *args)

    log(resized, "centre-cropped and resized to %dx%d", size, size)
    log(enlarged, "are smaller than %dx%d (the smallest %d px a side) and are enlarged, which blurs them", size, size,
        smallest)
    log(faces, "are %dx%d px, as aligned CelebA photos are: the celeba model was trained on their %d px centre, which "
        "--crop %d frames them to (in Python, np_draw.images.image_source(folder, channels=3, size=64, crop=%d)); "
        "without it each is cut to its %d px square", *_ALIGNED_CELEBA, *[CELEBA_CROP] * 3, min(_ALIGNED_CELEBA))
    log(widened, "are grey; their grey levels are used for R, G and B")
    log(transparent, "have transparency, which is dropped: their pixels are used as stored, transparent ones included")
    if light > total / 2:
        logger.warning("%s%d of %d images are mostly light, as dark drawings on white paper are; the grey models draw "
                       "light ink on a black background (as MNIST and Omniglot store them): invert such images first "
                       "(PIL.ImageOps.invert, or 1 - images for tensors)", f"{name}: " if name else "", light, total)


def _centre(image: Image.Image, side: int) -> Image.Image:
    left, top = (image.width - side) // 2, (image.height - side) // 2
    # Pillow checks a crop's size against PIL.Image.MAX_IMAGE_PIXELS as it checks a file's: the image is decoded
    # already, so the check guards nothing, and its warning for an image above the limit was logged when read.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return image.crop((left, top, left + side, top + side))


def _square(image: Image.Image, size: int, channels: int) -> torch.Tensor:
    """Centre-cropped to a square and resized: uint8 (channels, size, size)."""
    image = _centre(_eight_bit(image).convert("L" if channels == 1 else "RGB"), min(image.size))
    pixels = torch.from_numpy(np.array(image.resize((size, size), Image.BICUBIC), dtype=np.uint8))
    return pixels[None] if channels == 1 else pixels.permute(2, 0, 1)


def centre_crop(image: Image.Image, crop: int, name: str = "image") -> Image.Image:
    """The ``crop`` x ``crop`` px centre of ``image``, to frame photos as a model's training images were before they
    are resized (the paper's CelebA faces: the 148 px centre of the 178 x 218 px aligned photos). An image smaller
    than ``crop`` on either side is an InvalidInputError naming ``name``, as is a ``crop`` that is not a positive
    int."""
    crop = check_count(crop, "crop")
    if image.width < crop or image.height < crop:
        raise InvalidInputError(f"crop={crop} px does not fit {name}: it is {image.width}x{image.height} px")
    return _centre(image, crop)


def spread(items: Sequence[T], count: int | None) -> Sequence[T]:
    """``count`` of ``items`` spread evenly over all of them, the i-th at ``i * N // count`` (every (N // count)-th
    from the first when ``count`` divides N); all of them for None or a ``count`` of N or more. A subset of a split
    sorted by class (CIFAR-10's test file, Omniglot's alphabets, a folder of class folders) keeps every class, where
    the first ``count`` would be one class. A tensor or array gives its own kind (a view when ``count`` divides N);
    another sequence its own kind where ``count`` divides N (a range a range), else a list. A ``count`` that is not
    a positive int is an InvalidInputError."""
    total = len(items)
    if count is None or (count := check_count(count, "count")) >= total:
        return items
    if total % count == 0:
        return items[::total // count]
    # Every (N // count)-th would stop short of the end: 6,000 of CIFAR-10's 10,000 test images were its first six
    # classes
    index = [i * total // count for i in range(count)]
    if isinstance(items, (torch.Tensor, np.ndarray)):
        return items[index]
    return [items[i] for i in index]


def read_folder(folder: Path, name: str = "images", crop: int | None = None,
                limit: int | None = None) -> Iterator[tuple[str, Image.Image]]:
    """The image files under ``folder`` (recursively, following linked folders, hidden ones left out, sorted by
    path), decoded, turned upright as their EXIF says (and cut to their ``crop`` px centre, see
    :func:`centre_crop`); unreadable ones, and ones of more than twice Pillow's PIL.Image.MAX_IMAGE_PIXELS, skipped
    with a warning (ones above it are read, with one); with ``limit``, only ``limit`` files spread evenly over the
    sorted listing (:func:`spread`; the others are not opened, and an unreadable one among them leaves fewer).
    ``name`` is the argument an error names; images smaller than ``crop`` are an error naming all of them, once the
    files have been read. ``~`` is the home folder."""
    folder = Path(folder).expanduser()
    if folder.is_file():
        raise InvalidInputError(f"{name} must be a folder of image files, got {str(folder)!r}: a file")
    if not folder.is_dir():
        raise MissingFileError(f"{name} must be a folder of image files, got {str(folder)!r}: nothing there")
    crop = None if crop is None else check_count(crop, "crop")
    limit = None if limit is None else check_count(limit, "limit")
    skipped, huge, large, small, found = [], [], [], [], 0
    listing, hidden = _listing(folder)
    for path in spread(listing, limit):
        try:
            image = _decode(path)
        except _TooLarge as error:
            huge.append(f"{os.path.relpath(path, folder)} ({error.pixels} pixels)")
            continue
        except InvalidInputError as error:
            skipped.append(f"{os.path.relpath(path, folder)} ({_unreadable(error.__cause__)})")
            continue
        if _over_limit(image):
            large.append(f"{os.path.relpath(path, folder)} ({image.width}x{image.height})")
        if crop is not None and min(image.size) < crop:
            small.append(f"{os.path.relpath(path, folder)} ({image.width}x{image.height})")
            continue
        found += 1
        yield path, image if crop is None else _centre(image, crop)
    if skipped:
        logger.warning("skipped %d %s: %s", len(skipped), "file that is not a readable image" if len(skipped) == 1
                       else "files that are not readable images", ", ".join(skipped[:10]))
    if huge:
        logger.warning("skipped %d %s more than twice Pillow's limit of %d pixels (PIL.Image.MAX_IMAGE_PIXELS), "
                       "which Pillow refuses to decode: %s; raise PIL.Image.MAX_IMAGE_PIXELS above their size to "
                       "read them", len(huge), "file that is" if len(huge) == 1 else "files that are",
                       Image.MAX_IMAGE_PIXELS, ", ".join(huge[:10]))
    if large:
        logger.warning("%d %s larger than Pillow's limit of %d pixels (PIL.Image.MAX_IMAGE_PIXELS), read anyway: "
                       "%s", len(large), "file is" if len(large) == 1 else "files are", Image.MAX_IMAGE_PIXELS,
                       ", ".join(large[:10]))
    if small:
        raise InvalidInputError(f"crop={crop} px does not fit {len(small)} of the images in {str(folder)!r}: "
                                f"{', '.join(small[:10])}{', ...' if len(small) > 10 else ''}")
    if not found:
        # The info line that said so may not be shown (a library's logging): an error that blamed the files alone
        # left a folder of images in a hidden folder (.cats/) a mystery
        left_out = (f"; {len(hidden)} hidden {'file or folder was' if len(hidden) == 1 else 'files and folders were'}"
                    f" left out (names starting with '.'): {', '.join(hidden[:10])}{', ...' if len(hidden) > 10 else ''}"
                    "; name a hidden folder itself to read it" if hidden else "")
        raise InvalidInputError(f"{name} folder {str(folder)!r} holds no readable image files{left_out}")


def _listing(folder: Path) -> tuple[list[str], list[str]]:
    """The files under ``folder``, and the hidden ones left out (relative to ``folder``). Sorted by path components,
    as pathlib sorts ("a/b.png" before "a-c.png"), so that splits and labels keep their order; plain strings, as a
    Path costs several times the memory, which shows at 100,000 files."""
    listing, hidden, seen = [], [], set()
    # followlinks: a linked class folder (ln -s ../cats) was left out in silence, while a linked file was read
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back to a folder above (a loop), or a second way to one already read
            dirs.clear()
            continue
        seen.add(real)
        # A git clone's .git/lfs/objects holds a second copy of every image file (read first, as "." sorts before
        # letters); macOS leaves .DS_Store and ._name files, which were each warned about as unreadable
        hidden += [os.path.relpath(os.path.join(root, name), folder) for name in (*sorted(dirs), *sorted(files))
                   if name.startswith(".")]
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))  # sorted: which link is read is fixed
        listing += [os.path.join(root, file) for file in files if not file.startswith(".")]
    if hidden:
        logger.info("%s: left out %d hidden %s (names starting with '.')", folder, len(hidden),
                    "file or folder" if len(hidden) == 1 else "files and folders")
    return sorted(listing, key=lambda path: path.split(os.sep)), hidden


# The EXIF tag that says how a camera held the picture: phones store photos sideways and set it for viewers
_ORIENTATION = 0x0112


class _TooLarge(InvalidInputError):
    """An image file of more than twice PIL.Image.MAX_IMAGE_PIXELS, which Pillow refuses to decode; ``pixels`` is
    its size from the header (0 if unknown)."""

    def __init__(self, message: str, pixels: int) -> None:
        super().__init__(message)
        self.pixels = pixels


def _unreadable(cause: BaseException | None) -> str:
    """Why Pillow could not read a file, in a few words: no format it knows, else its own first line (a truncated
    file's "image file is truncated")."""
    if cause is None or isinstance(cause, UnidentifiedImageError):
        return "not an image format Pillow reads"
    return f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0][:100]}"


def _over_limit(image: Image.Image) -> bool:
    """Whether ``image`` is above PIL.Image.MAX_IMAGE_PIXELS, which Pillow decodes with a warning up to twice it."""
    return Image.MAX_IMAGE_PIXELS is not None and image.width * image.height > Image.MAX_IMAGE_PIXELS


def _decode(path: str | Path) -> Image.Image:
    """The image file ``path``, decoded and turned upright as its EXIF orientation says (as a viewer shows it)."""
    try:
        # The warning would print Pillow's source line beside np-draw's log lines, once per read of the file
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                if image.getexif().get(_ORIENTATION, 1) != 1:
                    image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as error:
        pixels = next((int(word.strip("(")) for word in str(error).split() if word.strip("(").isdigit()), 0)
        size = f"{pixels} pixels" if pixels else "an image"
        raise _TooLarge(f"{str(path)!r} is {size}, more than twice Pillow's limit of {Image.MAX_IMAGE_PIXELS} "
                        f"pixels (PIL.Image.MAX_IMAGE_PIXELS), which Pillow refuses to decode; raise "
                        f"PIL.Image.MAX_IMAGE_PIXELS above its size to read it", pixels) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidInputError(f"{str(path)!r} is not a readable image: {error}") from error
    return image


def open_image(path: str | Path, crop: int | None = None) -> Image.Image:
    """The image file ``path``, decoded, turned upright as its EXIF orientation says (a phone photo stored
    sideways), and then cut to its ``crop`` px centre when given (:func:`centre_crop`); InvalidInputError for a
    file Pillow cannot read, or one of more than twice Pillow's limit of PIL.Image.MAX_IMAGE_PIXELS pixels (a
    warning is logged for one above the limit, which is read)."""
    path = check_path(path)
    image = _decode(path)
    if _over_limit(image):
        logger.warning("%r is %dx%d = %d pixels, larger than Pillow's limit of %d pixels "
                       "(PIL.Image.MAX_IMAGE_PIXELS); read anyway", str(path), image.width, image.height,
                       image.width * image.height, Image.MAX_IMAGE_PIXELS)
    return image if crop is None else centre_crop(image, crop, repr(str(path)))


def load_folder_images(folder: str | Path, *, channels: int, size: int, name: str = "images",
                       crop: int | None = None, limit: int | None = None) -> torch.Tensor:
    """The image files under ``folder`` as :func:`read_folder` reads them (recursively, sorted by path, unreadable
    ones skipped with a warning; ``crop`` and ``limit`` as there), centre-cropped to a square and resized to
    ``size``: uint8 (N, C, size, size), read one file at a time. An error names ``name``."""
    channels, size = check_channels(channels), check_count(size, "size")
    return from_pil_images(read_folder(check_path(folder, name), name, crop, limit), channels=channels, size=size)


def from_pil_images(images: Iterable[Image.Image | tuple[str, Image.Image]], *, channels: int,
                    size: int) -> torch.Tensor:
    """PIL images of any size (or (name, image) pairs, the name used in errors) -> uint8 (N, C, size, size):
    centre-cropped to a square and resized, with a log line saying how many were resized, turned from grey to RGB
    or had their transparency dropped. A colour image for a grey model (``channels`` 1) is an error
    (InvalidInputError), as are no images."""
    return _pil_batch(images, channels, size)[0]


def _pil_batch(images: Iterable[Image.Image | tuple[str, Image.Image]], channels: int,
               size: int) -> tuple[torch.Tensor, list[str]]:
    """:func:`from_pil_images`, and the images' labels."""
    pairs = [(label, _square(image, size, channels)) for label, image in _checked(images, channels, size)]
    if not pairs:
        raise InvalidInputError("no images were given")
    return torch.stack([square for _, square in pairs]), [label for label, _ in pairs]


def as_image_tensor(images: Any, *, channels: int, size: int, name: str = "images") -> torch.Tensor:
    """Gather images given in any of the supported forms into one (N, C, H, W) tensor, before
    :func:`check_images`.

    Args:
        images: a tensor or NumPy array (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 or float in [0, 1]; a PIL
            image or a list of them (any size: centre-cropped and resized), or a list of image tensors or arrays;
            a torch ``Dataset`` or ``DataLoader`` whose items are such images, PIL images, or (image, label)
            pairs; a folder of image files (see :func:`load_folder_images`); or an :class:`ImageSource` of
            ``channels`` x ``size`` x ``size`` images (:func:`image_source`), read whole.
        channels, size: what the model expects.
    Returns:
        (N, C, H, W) tensor, dtype as given (uint8 or float); a list or dataset of images of several dtypes (uint8
        beside floats) gives float in [0, 1], each image checked and scaled on its own.
    """
    if isinstance(images, (str, Path)):
        return load_folder_images(images, channels=channels, size=size, name=name)
    if isinstance(images, ImageSource):
        # What image_source gives (a folder framed with crop=, as its log line suggests for CelebA photos) and fit
        # takes: gathered here so that the same held-out images also score, reconstruct and encode.
        if not len(images):
            raise InvalidInputError(f"{name} is an empty ImageSource")
        return torch.cat(list(image_source(images, channels=channels, size=size, name=name).chunks()))
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise InvalidInputError(f"{name} is an empty list")
        if all(isinstance(item, Image.Image) for item in images):
            return from_pil_images(images, channels=channels, size=size)
        if not all(isinstance(item, (torch.Tensor, np.ndarray)) for item in images):
            raise InvalidTypeError(f"{name}: a list must hold only PIL images or only image tensors/arrays, got "
                                   f"{sorted({type(item).__name__ for item in images})}")
        shapes = {tuple(item.shape) for item in images}
        if len(shapes) != 1:
            raise InvalidInputError(f"{name}: the images of a list must share one shape, got {sorted(shapes)}")
        tensors = [_from_numpy(item, f"{name}[{i}]") if isinstance(item, np.ndarray) else item
                   for i, item in enumerate(images)]
        if len({item.dtype for item in tensors}) > 1:
            return _cat([as_image_tensor(item[None], channels=channels, size=size, name=f"{name}[{i}]")
                         for i, item in enumerate(tensors)], channels=channels, size=size, name=name)
        images = torch.stack(tensors)
    if isinstance(images, np.ndarray):
        images = _from_numpy(images, name)
    if isinstance(images, torch.Tensor):
        _check_data(images, name)
        if images.ndim == 3:
            if channels == 1 and tuple(images.shape[1:]) == (size, size):
                return images[:, None]
            read = f"{name}: a 3-D tensor is read as grey images (N, H, W)"
            if channels == 1:
                raise InvalidInputError(f"{read}, (N, {size}, {size}) here; got {tuple(images.shape)}")
            hint = ("for one colour image, give a batch of one (images[None])" if images.shape[0] == 3 else
                    "to use grey images, repeat them over R, G and B (images[:, None].expand(-1, 3, -1, -1)), as "
                    "grey image files are")
            raise InvalidInputError(f"{read}, and this model takes colour ones (N, 3, {size}, {size}); got "
                                    f"{tuple(images.shape)}: {hint}")
        if channels == 1 and images.ndim == 4 and images.shape[-1] == 3 and images.shape[1] not in (1, 3):
            # Colour in the layout given (NHWC), as colour image files are refused: check_images asked for
            # (N, 1, H, W) (NCHW) of an (N, H, W, 3) array, which no transpose gives
            raise InvalidInputError(f"{name} holds colour images (3 channels), got shape {tuple(images.shape)}, and "
                                    f"the model takes grey ones, (N, 1, {size}, {size}), (N, {size}, {size}, 1) or "
                                    f"(N, {size}, {size}): use a colour model (a cifar10 or celeba preset or "
                                    "checkpoint), or convert the images to grey first")
        if images.ndim == 4 and images.shape[1] != channels and images.shape[-1] == channels:
            if tuple(images.shape[1:3]) != (size, size):
                # Named in the layout given: after the transpose, check_images named a shape the caller never had
                raise InvalidInputError(f"{name} must have shape (N, {size}, {size}, {channels}) (NHWC) or (N, "
                                        f"{channels}, {size}, {size}) (NCHW), got {tuple(images.shape)}")
            return rearrange(images, "n h w c -> n c h w").contiguous()
        return images
    if _is_dataset(images, name):
        # Map-style or iterable, every item is read and converted; image_source reads map-style ones lazily.
        if isinstance(images, torch.utils.data.DataLoader):
            images = (image for batch in images for image in _image_of(batch, "a batch"))
        items = [_item_tensor(item, channels=channels, size=size, name=name) for item in images]
        if not items:
            raise InvalidInputError(f"{name} is an empty dataset")
        return _cat(items, channels=channels, size=size, name=name)
    raise InvalidTypeError(f"{name} must be a tensor, a NumPy array, a PIL image, a list of images, a torch Dataset "
                           f"or DataLoader, a Hugging Face datasets.Dataset, an ImageSource, or a folder path, got "
                           f"{type(images).__name__}")


def _cat(items: list[torch.Tensor], *, channels: int, size: int, name: str) -> torch.Tensor:
    """One batch of ``items``; of several dtypes (uint8 beside floats), each is checked and scaled to [0, 1] on its
    own, as a lazy source reads them: torch.cat would promote them to one dtype, uint8 levels then read as floats,
    and a bool or integer image passed as floats where it alone is refused."""
    if len({item.dtype for item in items}) == 1:
        return torch.cat(items)
    return torch.cat([check_images(item, channels=channels, size=size, name=f"{name}[{i}]")
                      for i, item in enumerate(items)])


def _is_dataset(images: Any, name: str = "images") -> bool:
    """A torch Dataset or DataLoader, or a Hugging Face ``datasets.Dataset``; a ``DatasetDict``, whose items are its
    splits, is refused."""
    if isinstance(images, dict) and hasattr(images, "column_names"):
        raise InvalidTypeError(f"{name} is a dataset of splits {list(images)} (a DatasetDict): pass one split, e.g. "
                               f"{name}[{next(iter(images), 'train')!r}]")
    return isinstance(images, (torch.utils.data.Dataset, torch.utils.data.DataLoader)) or (
        hasattr(images, "column_names") and hasattr(images, "__iter__"))


def _image_of(item: Any, name: str) -> Any:
    """A dataset item's (or a DataLoader batch's) image: the item, the first of a pair, or a (Hugging Face) row's
    only image."""
    item = item[0] if isinstance(item, (tuple, list)) else item
    if not isinstance(item, dict):
        return item
    for key in ("image", "img"):
        if key in item:
            return item[key]
    found = [value for value in item.values() if isinstance(value, Image.Image) or getattr(value, "ndim", 0) >= 2]
    if len(found) != 1:
        raise InvalidInputError(f"{name}: a dataset row must hold one image under 'image' or 'img', got the keys "
                                f"{sorted(item)}")
    return found[0]


def _item_tensor(item: Any, *, channels: int, size: int, name: str) -> torch.Tensor:
    """One dataset item -> (1, C, H, W), dtype as given."""
    item = _image_of(item, name)
    if isinstance(item, Image.Image):
        _check_pil_image(item, channels, name)
        return _square(item, size, channels)[None]
    if not isinstance(item, (torch.Tensor, np.ndarray)):
        # A Hugging Face dataset made from arrays (Dataset.from_dict) gives its rows back as nested lists
        hint = ("; a Hugging Face dataset of arrays gives them back as lists unless it is formatted: pass "
                "dataset.with_format('numpy') (its arrays must then be uint8, or floats in [0, 1])"
                if isinstance(item, list) else "")
        raise InvalidTypeError(f"{name}: a dataset item must be an image tensor, array or PIL image, got "
                               f"{type(item).__name__}{hint}")
    if item.ndim == 2 and (channels != 1 or tuple(item.shape) != (size, size)):
        raise InvalidInputError(f"{name}: a dataset item of shape {tuple(item.shape)} is one grey image; this model "
                                f"takes ({channels}, {size}, {size}) images")
    return as_image_tensor(item[None], channels=channels, size=size, name=name)


class ImageSource(abc.ABC):
    """N images read a batch at a time by index, so that training need not hold them all: in memory
    (:class:`TensorImages`) or read on demand from files or a dataset (:class:`LazyImages`).

    ``read(index)`` returns (n, C, H, W) float in [0, 1] (a lazy source: float32 on the CPU), checked.
    """

    channels: int
    size: int

    @abc.abstractmethod
    def __len__(self) -> int:
        """N."""

    @abc.abstractmethod
    def read(self, index: torch.Tensor) -> torch.Tensor:
        """The images at ``index`` (a 1-d int64 tensor): (len(index), C, H, W)."""

    def chunks(self, index: torch.Tensor | None = None, size: int = 1024) -> Iterator[torch.Tensor]:
        """The images at ``index`` (all when None) in order, ``size`` at a time."""
        index = torch.arange(len(self)) if index is None else index
        for start in range(0, len(index), size):
            yield self.read(index[start:start + size])

    def fingerprint(self, progress: bool = False) -> str:
        """sha256 of the images' bytes in order, read a chunk at a time (the same for a source in memory and a lazy
        one of the same images and dtype); ``progress`` shows a bar (a folder of thousands of files takes seconds)."""
        check_flags(progress=progress)
        digest = hashlib.sha256()
        with tqdm(total=len(self), desc="fingerprint", disable=not progress, leave=False) as bar:
            for chunk in self.chunks():
                digest.update(chunk.detach().cpu().contiguous().view(torch.uint8).numpy())
                bar.update(len(chunk))
        return digest.hexdigest()

    def subset(self, index: torch.Tensor) -> ImageSource:
        """The images at ``index``, read lazily."""
        return _Indexed(self, index)

    def __add__(self, other: ImageSource) -> ImageSource:
        """This source's images, then ``other``'s."""
        return _Joined(self, other)


class TensorImages(ImageSource):
    """Images held in one checked (N, C, H, W) float tensor."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.channels, self.size = images, images.shape[1], images.shape[-1]

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: torch.Tensor) -> torch.Tensor:
        return self.images[index.to(self.images.device)]


class LazyImages(ImageSource):
    """Images read one at a time by ``item(i)`` (a file opened, a dataset row decoded) when a batch needs them.

    Args:
        length: N.
        item: i -> the i-th image in any form a dataset item may take (see :func:`as_image_tensor`).
        channels, size: what the model expects; PIL images are centre-cropped and resized to it.
        name: what the images are, for error messages.
        label: i -> the i-th image's name in error messages (default ``name[i]``).
    """

    def __init__(self, length: int, item: Callable[[int], Any], *, channels: int, size: int, name: str,
                 label: Callable[[int], str] | None = None) -> None:
        self.length, self.item, self.channels, self.size, self.name = length, item, channels, size, name
        self.label = label or (lambda i: f"{name}[{i}]")

    def __len__(self) -> int:
        return self.length

    def read(self, index: torch.Tensor) -> torch.Tensor:
        # One by one, so that an error names the file or row at fault
        items = [check_images(_item_tensor(self.item(i), channels=self.channels, size=self.size, name=self.label(i)),
                              channels=self.channels, size=self.size, name=self.label(i)) for i in index.tolist()]
        if not items:
            return torch.empty(0, self.channels, self.size, self.size)
        return torch.cat([item.to(items[0].dtype) for item in items])


class _Indexed(ImageSource):
    def __init__(self, source: ImageSource, index: torch.Tensor) -> None:
        self.source, self.index, self.channels, self.size = source, index, source.channels, source.size

    def __len__(self) -> int:
        return len(self.index)

    def read(self, index: torch.Tensor) -> torch.Tensor:
        return self.source.read(self.index[index])


class _Joined(ImageSource):
    def __init__(self, first: ImageSource, second: ImageSource) -> None:
        self.first, self.second, self.channels, self.size = first, second, first.channels, first.size

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def read(self, index: torch.Tensor) -> torch.Tensor:
        in_first = index < len(self.first)
        if in_first.all():
            return self.first.read(index)
        if not in_first.any():
            return self.second.read(index - len(self.first))
        first, second = self.first.read(index[in_first]), self.second.read(index[~in_first] - len(self.first))
        out = first.new_empty((len(index), *first.shape[1:]))
        out[in_first], out[~in_first] = first, second.to(first)
        return out


def first_image_side(images: Any) -> int | None:
    """The shorter side of the first image of ``images`` when they are PIL images or image files: a folder, a PIL
    image or a list of them, or a dataset whose items are (or hold) PIL images; None for tensors, arrays and
    anything else. For readers that keep images at their own size (the FID's, which lets its network resize them)."""
    if isinstance(images, (str, Path)) and Path(images).expanduser().is_dir():
        first = next(read_folder(Path(images).expanduser()), (None, None))[1]
    elif isinstance(images, (list, tuple)):
        first = images[0] if images else None
    elif _is_dataset(images) and hasattr(images, "__getitem__") and hasattr(images, "__len__") and len(images):
        first = _image_of(images[0], "images[0]")
    else:
        first = images
    return min(first.size) if isinstance(first, Image.Image) else None


def _by_index(images: Any, name: str) -> Any:
    """The map-style dataset ``images`` is, or that a DataLoader only batches (in order or shuffled: read by index,
    its dataset gives the same images), else None."""
    data = torch.utils.data
    if isinstance(images, data.DataLoader):
        if not (type(images.batch_sampler) is data.BatchSampler and images.collate_fn is data.default_collate
                and type(images.sampler) in (data.SequentialSampler, data.RandomSampler)):
            logger.info("%s: the DataLoader has its own sampler or collate_fn, which choose or change the images: it "
                        "is read through once and its images held in memory", name)
            return None
        logger.info("%s: the DataLoader's dataset is read by index in fit's own seeded order and batch size; the "
                    "loader's sampler, batch size and workers are not used", name)
        images = images.dataset
    elif not _is_dataset(images, name):
        return None
    if isinstance(images, data.IterableDataset) or not hasattr(images, "__len__"):
        logger.info("%s is an iterable dataset, which cannot be read by index: its images are held in memory", name)
        return None
    return images


def image_source(images: Any, *, channels: int, size: int, name: str = "images",
                 crop: int | None = None) -> ImageSource:
    """Images in any form :func:`as_image_tensor` takes, as an :class:`ImageSource` for training: a folder, a
    map-style torch Dataset (or a DataLoader that only batches one) or a Hugging Face ``datasets.Dataset`` is read
    lazily, a batch at a time, so memory does not grow with the number of images; the other forms are gathered and
    checked in memory (an iterable dataset, which cannot be read by index, and a DataLoader with its own sampler or
    collate_fn, included). A dataset read lazily is read again each time an image is used: random transforms are
    drawn anew each time.

    Lazily read PIL images are centre-cropped and resized to ``size`` without a log line per image; a colour image
    for a grey model is an error when its batch is read (a folder's, before it is returned). A folder's images are
    counted as :func:`from_pil_images` counts them (resized, grey, transparent), in one log line each. ``crop``
    frames a folder's images by their ``crop`` px centre (:func:`centre_crop`); it is an error with anything else.
    """
    if crop is not None and not isinstance(images, (str, Path)):
        raise InvalidInputError(f"{name}: crop applies to a folder of image files, got {type(images).__name__}")
    if isinstance(images, ImageSource):
        if (images.channels, images.size) != (channels, size):
            raise InvalidInputError(f"{name}: an ImageSource of {images.channels}x{images.size}x{images.size} images "
                                    f"for a model of {channels}x{size}x{size}")
        return images
    if isinstance(images, (str, Path)):
        # Each file is decoded and checked once here (and let go), so that no lazy read fails, a colour image for a
        # grey model is refused before any training, and a file above Pillow's limit is logged once.
        files = [path for path, _ in _checked(read_folder(Path(images), name, crop), channels, size, str(images))]

        def square(i: int) -> torch.Tensor:
            image = _decode(files[i])
            return _square(image if crop is None else _centre(image, crop), size, channels)

        source: ImageSource = LazyImages(len(files), square, channels=channels, size=size, name=str(images),
                                         label=files.__getitem__)
    elif (dataset := _by_index(images, name)) is not None:
        if len(dataset) == 0:
            raise InvalidInputError(f"{name} is an empty dataset")
        source = LazyImages(len(dataset), dataset.__getitem__, channels=channels, size=size, name=name)
    else:
        tensor = as_image_tensor(images, channels=channels, size=size, name=name)
        return TensorImages(check_images(tensor, channels=channels, size=size, name=name))
    # By the source's name, a folder's path as in the line on what loading changed, not the argument's ("images")
    logger.info("%s: %d images, read a batch at a time (images other than %dx%d are centre-cropped and resized)",
                source.name, len(source), size, size)
    return source


def load_images(path: str | Path, *, channels: int, size: int, crop: int | None = None,
                limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Read images from one path, as the command line takes them.

    Args:
        path: an ``.npz`` file with an ``images`` array (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 or float in
            [0, 1]; a folder of image files (see :func:`load_folder_images`); or one image file (centre-cropped to a
            square and resized to ``size``).
        channels, size: what the model expects.
        crop: image files are first cut to their ``crop`` px centre (:func:`centre_crop`); not for an .npz file.
        limit: only ``limit`` images spread evenly over them (:func:`spread`; of a folder, the other files are not
            read).
    Returns:
        (N, C, size, size) tensor (uint8, or float as stored in an .npz), and a label naming each image's source:
        its file, or ``path[i]`` for the i-th image of an .npz.
    Raises:
        MissingFileError: nothing at ``path``. InvalidInputError: an .npz that is not a readable archive of a
        numeric ``images`` array (:func:`npz_images`) or a file that is not an image.
    """
    path = check_path(path)
    limit = None if limit is None else check_count(limit, "limit")
    channels, size = check_channels(channels), check_count(size, "size")
    if path.is_dir():
        # "images", not the path: read_folder's messages put the name before the folder's path
        return _pil_batch(read_folder(path, "images", crop, limit), channels, size)
    elif not path.is_file():
        raise MissingFileError(f"no file or folder at {str(path)!r}")
    elif is_array_file(path):
        if crop is not None:
            raise InvalidInputError(f"crop applies to image files, and {str(path)!r} is an array file")
        images = as_image_tensor(npz_images(path), channels=channels, size=size, name=f"{path}['images']")
        index = spread(range(len(images)), limit)
        # Indexed, a copy: spread's view of the array (for a limit that divides N) kept all of it in memory
        return (images if limit is None else images[list(index)]), [f"{path}[{i}]" for i in index]
    else:
        return _item_tensor(open_image(path, crop), channels=channels, size=size, name=str(path)), [str(path)]


def is_array_file(path: str | Path) -> bool:
    """Whether ``path`` names an .npz array file rather than an image file or folder, by its suffix in any case (a
    file saved as IMAGES.NPZ on Windows or a FAT drive is one)."""
    return Path(path).suffix.lower() == ".npz"


def npz_images(path: Path) -> np.ndarray:
    """The ``images`` array of the .npz file ``path``, of any shape and a numeric (or bool) dtype.

    InvalidInputError naming the file for one that is not a readable .npz archive of such an array: truncated or
    corrupt, not a zip archive at all (a text file named x.npz), one .npy array, an archive without ``images``, or
    an ``images`` array of objects, strings or records. Object arrays are never loaded (allow_pickle=False):
    unpickling a file runs its code, and NumPy's own message for them advises loading it unsafely."""
    not_read = f"{str(path)!r} is not a readable .npz archive of a numeric 'images' array"
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        # NumPy takes a file that is neither a zip archive nor a .npy array for a pickle: say what it is instead
        got = ("it is empty" if isinstance(error, EOFError) else
               f"its zip archive is damaged or truncated ({error})" if isinstance(error, zipfile.BadZipFile) else
               f"it cannot be opened ({error})" if isinstance(error, OSError) else
               "it is not a zip archive, as an .npz file is")
        raise InvalidInputError(f"{not_read}: {got}") from error
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InvalidInputError(f"{not_read}: it is one .npy array, of shape {data.shape}; save it with "
                                "numpy.savez(path, images=array)")
    with data:
        if "images" not in data.files:
            raise InvalidInputError(f"{str(path)!r} has no 'images' array; it holds {sorted(data.files)}")
        try:  # the header first, from the same damaged or truncated data as the array (a zlib.error)
            problem = _member_problem(data.zip, "images")
            images = None if problem else data["images"]
        except ValueError as error:
            objects = "pickle" in str(error)  # NumPy's message for an object array, which it did not load
            got = ("its 'images' array holds Python objects (object arrays are never loaded)" if objects else
                   f"its 'images' array is damaged ({type(error).__name__})")
            raise InvalidInputError(f"{not_read}: {got}") from error
        except (OSError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error) as error:
            raise InvalidInputError(f"{not_read}: its 'images' array is damaged or truncated ({error})") from error
    if problem:
        raise InvalidInputError(f"{not_read}: {problem}")
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool):
        raise InvalidInputError(f"{not_read}: its 'images' array has dtype {images.dtype}")
    return images


def _member_problem(archive: zipfile.ZipFile, key: str) -> str | None:
    """What is wrong with the array ``key`` of an .npz ``archive``, from its .npy header alone, or None. NumPy makes
    the array its header declares before it reads the data: a header of 20 GiB in a file of 250 bytes was a
    MemoryError (or took the memory, until the data ran out), and a zip-compressed array of zeros swells 1,000 times
    (1 MB on disk, 1 GB in memory). So the declared size must be held in the archive and fit this machine's memory.
    A member that is no .npy array at all NumPy returns as its bytes, read whole."""
    name = key if key in archive.namelist() else f"{key}.npy"  # the member NumPy reads for ``key``
    with archive.open(name) as member:
        try:
            version = np.lib.format.read_magic(member)
            # Format 3.0 differs from 2.0 only in its header's encoding (UTF-8, for structured dtypes' names)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(member)
        except ValueError as error:
            return f"its '{key}' member is no .npy array ({error})"
        held = archive.getinfo(name).file_size - member.tell()  # the bytes after the header
    if dtype.hasobject:  # refused by NumPy's allow_pickle=False, with a message of its own
        return None
    if any(side < 0 for side in shape):
        return f"its '{key}' array's header declares the shape {shape}"
    size, memory = math.prod(shape) * dtype.itemsize, physical_memory()
    if size > held:
        return (f"its '{key}' array's header declares {shape} {dtype} ({size:,} bytes), more than the {held:,} bytes "
                "the archive holds for it")
    if memory is not None and size > memory:
        return (f"its '{key}' array, {shape} {dtype}, takes {size / 2**30:,.1f} GiB, more than this machine's "
                f"{memory / 2**30:,.1f} GiB of memory")
    return None


# How far outside [0, 1] floats to draw may lie before :func:`_unit` warns: rounding in a model's own outputs
_DRAW_SLACK = 1e-3


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 or float images -> float32 on the CPU in [0, 1]. Floats outside it are clamped with a warning: in
    silence, uint8 levels held as floats drew an all-white picture."""
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        return images.float() / 255
    images = images.float()
    low, high = (images.min().item(), images.max().item()) if images.numel() else (0.0, 1.0)
    if not (-_DRAW_SLACK <= low and high <= 1 + _DRAW_SLACK):  # NaN compares False
        logger.warning("images to draw must be uint8 or float in [0, 1], got floats in [%.4g, %.4g]: drawn clamped "
                       "to [0, 1] (NaN as black); divide uint8 levels held as floats by 255", low, high)
    return images.clamp(0, 1)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, C, H, W) uint8 or float in [0, 1], C in (1, 3) -> N PIL images ("L" or "RGB")."""
    if not isinstance(images, torch.Tensor):
        raise InvalidTypeError(f"images must be a torch tensor (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise InvalidInputError(f"images must be (N, C, H, W) with C in (1, 3), got shape {tuple(images.shape)}")
    pixels = rearrange((_unit(images) * 255).round().to(torch.uint8), "n c h w -> n h w c").numpy()
    return [Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p) for p in pixels]


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> Image.Image:
    """Tile (N, C, H, W) images (uint8, or float in [0, 1]) into one PIL image, ``nrow`` per row (default: a
    square), separated by ``padding`` px of white."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
        raise InvalidInputError(f"images must be a non-empty (N, C, H, W) tensor, got "
                                f"{type(images).__name__} of shape {tuple(getattr(images, 'shape', ()))}")
    n, c, h, w = images.shape
    # no empty columns: nrow beyond the number of images is one row of them (as torchvision's make_grid)
    nrow = math.ceil(math.sqrt(n)) if nrow is None else min(check_count(nrow, "nrow"), n)
    padding = check_count(padding, "padding", least=0)
    canvas = torch.ones(c, math.ceil(n / nrow) * (h + padding) + padding, nrow * (w + padding) + padding)
    for i, image in enumerate(_unit(images)):
        top, left = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        canvas[:, top:top + h, left:left + w] = image
    return to_pil(canvas[None])[0]


# The largest side each format's encoder takes
_LARGEST = {"JPEG": 65_500, "WEBP": 16_383}


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, padding: int = 2) -> Path:
    """Save :func:`make_grid` of ``images`` to ``path`` (format from the suffix); returns the path."""
    path, grid = check_path(path), make_grid(images, nrow, padding)
    if path.suffix.lower() not in Image.registered_extensions():
        raise InvalidInputError(f"path must end in a picture format's suffix (.png, .jpg, ...), got {str(path)!r}")
    kind = Image.registered_extensions()[path.suffix.lower()]
    if max(grid.size) > _LARGEST.get(kind, max(grid.size)):  # before the encoder, which prints its own line first
        raise InvalidInputError(f"a {kind} picture is at most {_LARGEST[kind]:,} px a side, and the grid is "
                                f"{grid.width:,} x {grid.height:,} px: save it as PNG, or lay it out with more images "
                                "per row (nrow, --nrow)")
    try:
        # Whole or not at all: Pillow left a file truncated to nothing where a grid was too large for JPEG or WebP
        write_together({path: lambda staged: grid.save(staged, format=kind)})
    except UnwritablePathError:  # the folder does not take files: said already
        raise
    except (OSError, ValueError) as error:  # Pillow: a missing folder, an unknown suffix, a read-only file
        raise UnwritablePathError(f"cannot write {str(path)!r}: {error}") from error
    return path


def save_pairs(images: torch.Tensor, results: torch.Tensor, path: str | Path, pairs_per_row: int | None = None) -> Path:
    """Save each image beside its result (a reconstruction, a parse canvas) as one grid picture.

    Args:
        images: (N, C, H, W) uint8, or float in [0, 1].
        results: (N, C, h, w) uint8, or float in [0, 1]; a smaller result (a canvas at half the image size) is scaled up to
            H x W by repeating pixels.
        path: the picture file (format from the suffix).
        pairs_per_row: pairs per row (default: about square).
    Returns:
        The path.
    """
    if pairs_per_row is not None:  # 0 was taken for None
        pairs_per_row = check_count(pairs_per_row, "pairs_per_row")
    if images.ndim != 4 or results.shape[:2] != images.shape[:2]:
        raise InvalidInputError(f"images and results must be (N, C, H, W) with the same N and C, got shapes "
                                f"{tuple(images.shape)} and {tuple(results.shape)}")
    images, results = _unit(images), _unit(results)  # each in its own range: uint8 images beside float results
    if results.shape[-2:] != images.shape[-2:]:
        results = torch.nn.functional.interpolate(results, size=images.shape[-2:], mode="nearest")
    pairs = rearrange(torch.stack([images, results], 1), "n two c h w -> (n two) c h w")
    return save_grid(pairs, path, 2 * (pairs_per_row or math.ceil(math.sqrt(len(images)))))
