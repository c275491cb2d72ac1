"""The exceptions np-draw raises for a user's mistake or a damaged file.

Each one also subclasses the builtin exception the same mistake raised before this module existed
(``ValueError``, ``TypeError`` or ``OSError``), so code that catches the builtin keeps working, while code that
wants every np-draw failure catches :class:`NPDrawError`. The catalogue of cases is ``docs/errors.md``.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "ConfigMismatchError", "CorruptWeightsError", "InvalidInputError", "InvalidTypeError", "MissingFileError",
    "NPDrawError", "TrainingDivergedError", "UnknownModelError", "UnwritablePathError", "WeightsUnavailableError",
]


class NPDrawError(Exception):
    """The base of every error np-draw raises on purpose."""


class InvalidInputError(NPDrawError, ValueError):
    """An argument has the right type but a wrong value: a shape, a range, NaN, an empty batch, a count <= 0."""


class InvalidTypeError(NPDrawError, TypeError):
    """An argument has the wrong type or dtype."""


class UnknownModelError(NPDrawError, ValueError):
    """A model, preset or data set name that is none of the known ones; the message lists them."""


class ConfigMismatchError(NPDrawError, ValueError):
    """Weights whose names or shapes do not fit the config they came with."""


class CorruptWeightsError(NPDrawError, OSError, ValueError):
    """A weights or checkpoint file is unreadable (truncated, not safetensors) or differs from the sha256 and size
    the weights manifest records; nothing was loaded. Also a ``ValueError``, which such files raised before."""


class WeightsUnavailableError(NPDrawError, OSError):
    """The weights cannot be had: not published yet, or neither in the cache nor reachable on the Hub."""


class MissingFileError(NPDrawError, FileNotFoundError):
    """A file or folder a call reads is not there: images, a model folder's files, a feature network's weights."""


class TrainingDivergedError(NPDrawError, FloatingPointError):
    """A training loss or validation figure became NaN or infinite; the message names the stage and round and what
    to change. A checkpoint written after the diverging step may hold its weights: train into a new folder."""


class UnwritablePathError(NPDrawError, OSError):
    """An output file or folder cannot be created or written, or a Hub repo cannot be uploaded to (unreachable)."""


def run_main(main: Callable[[], Any], script: str) -> None:
    """Run a script's ``main`` (``script`` is its ``__file__``): an :class:`NPDrawError` or a missing file (a user's
    mistake: a wrong data path, an unknown model) ends the process with one line naming the script, not a traceback.
    The repository's benchmark and maintenance scripts end this way."""
    try:
        main()
    except (NPDrawError, FileNotFoundError) as error:
        raise SystemExit(f"{Path(script).name}: error: {error}") from None


def check_temperature(temperature: Any) -> float:
    """A positive finite number (NumPy's included, not a bool) as a float, else a clear error."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not 0 < temperature < float("inf"):
        raise InvalidInputError(f"temperature must be a positive finite number, got {temperature!r}")
    return float(temperature)


def check_flags(**flags: Any) -> None:
    """Each flag a bool (NumPy's included), else an :class:`InvalidTypeError` naming it (a string such as 'no' would
    count as True)."""
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidTypeError(f"{name} must be True or False, got {value!r}")


def check_count(value: Any, name: str, least: int = 1) -> int:
    """An int of at least ``least`` (NumPy's integers included), else an :class:`InvalidInputError` naming
    ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(least, f"an integer >= {least}")
        raise InvalidInputError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_seed(seed: Any) -> int:
    """A seed torch's generators take, an int in [-2**63, 2**64) (NumPy's integers included), as an int: another type
    is an :class:`InvalidTypeError`, an int beyond the range (torch's ValueError) an :class:`InvalidInputError`."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidTypeError(f"seed must be an int, got {seed!r}")
    if not -2**63 <= seed < 2**64:
        raise InvalidInputError(f"seed must be an int in [-2**63, 2**64), got {seed!r}")
    return int(seed)


def check_channels(channels: Any) -> int:
    """1 (grey) or 3 (RGB) as an int, else an :class:`InvalidInputError`: 1.0 equals 1 and failed in torch.zeros, 2
    in NumPy's reshape."""
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels not in (1, 3):
        raise InvalidInputError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    return int(channels)


def check_device(device: Any, name: str = "device") -> torch.device:
    """A torch device (or its name) that exists on this machine, else an :class:`InvalidInputError` naming
    ``name``."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InvalidInputError(f"{name} must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}") \
            from error
    if device.type == "meta":  # shapes without data: nothing could be computed or returned there
        raise InvalidInputError(f"{name} 'meta' holds no data; give a device that computes, such as 'cpu' or 'cuda'")
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if device.type in available and not available[device.type]():
        raise InvalidInputError(f"{name} {str(device)!r}: {device.type.upper()} is not available on this machine")
    return device


# The floating dtypes a model computes in. The float8 (and smaller) dtypes are floating too, but storage formats:
# torch has no convolution, matrix product or elementwise arithmetic in them, so a model loaded in one failed at its
# first call, deep inside ("mul_cpu_reduced_float" not implemented for 'Float8_e4m3fn').
_COMPUTE_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def check_dtype(dtype: Any, name: str = "dtype", *, auto: bool = False) -> torch.dtype | str:
    """A floating torch dtype a model computes in (float32, bfloat16, float16, float64), given as one or by its name
    ("bfloat16", "torch.float16"; or, with ``auto``, the string "auto"), else an :class:`InvalidTypeError` naming
    ``name``."""
    if auto and isinstance(dtype, str) and dtype == "auto":
        return dtype
    if isinstance(dtype, str):  # a name, as transformers takes it
        dtype = getattr(torch, dtype.removeprefix("torch."), dtype)
    if not isinstance(dtype, torch.dtype) or dtype not in _COMPUTE_DTYPES:
        also = ", or 'auto'" if auto else ""
        why = (": a storage format, with no convolutions or matrix products to run the model in"
               if isinstance(dtype, torch.dtype) and dtype.is_floating_point else "")
        raise InvalidTypeError(f"{name} must be a floating torch dtype such as torch.float32, torch.bfloat16 or "
                               f"torch.float16{also}, got {dtype!r}{why}")
    return dtype


def check_path(path: Any, name: str = "path") -> Path:
    """A file or folder path given as a str or an ``os.PathLike``, as a Path with ``~`` expanded, else an
    :class:`InvalidTypeError` naming ``name`` (an int or None failed inside pathlib with its TypeError)."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidTypeError(f"{name} must be a str or a path, got {type(path).__name__}")
    return Path(path).expanduser()
