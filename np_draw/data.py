"""The paper's data sets, read from the ``.npz`` files of a data folder (the shared data's README gives their
formats): MNIST, Omniglot (the paper's split by drawer, and Lake's split of unseen alphabets), CIFAR-10 and the
CelebA subset."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from PIL import Image

from .errors import InvalidInputError, UnknownModelError, check_count
from .images import CELEBA_CROP, centre_crop


def _decode_jpegs(data: Any, indices: np.ndarray, transform=None) -> np.ndarray:
    """The JPEG images at ``indices`` of a ``*_jpegbytes.npz`` file, RGB (n, H, W, 3) uint8."""
    offsets, blob = data["offsets"], data["jpeg"]
    images = (Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB") for i in indices)
    return np.stack([np.asarray(transform(image) if transform else image) for image in images])


def celeba_transform(image: Image.Image, size: int = 64, crop: int = CELEBA_CROP) -> Image.Image:
    """The paper's CelebA preprocessing: a ``crop`` px centre crop (:func:`np_draw.images.centre_crop`), resized to
    ``size`` px."""
    return centre_crop(image, crop).resize((size, size), Image.BICUBIC)


DATASETS = ("mnist", "omniglot", "cifar10", "celeba")
_OMNIGLOT = ("background_28x28.npz", "evaluation_28x28.npz")
# The files each split is read from, inside the data set's folder (see the shared data's README). Omniglot's
# "train" and "test" are the paper's split (the IWAE paper's protocol: all 1,623 characters, drawers 1-15 to train,
# 16-20 to test); "background" and "evaluation" are Lake's split, whose test alphabets are never seen in training.
DATA_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "mnist": {"train": ("train.npz",), "test": ("test.npz",)},
    "omniglot": {"train": _OMNIGLOT, "test": _OMNIGLOT, "background": _OMNIGLOT[:1], "evaluation": _OMNIGLOT[1:]},
    "cifar10": {"train": ("train_jpegbytes.npz",), "test": ("test_jpegbytes.npz",)},
    "celeba": {split: ("all6000_jpegbytes_178x218.npz",) for split in ("train", "val", "test")},
}
OMNIGLOT_TRAIN_DRAWERS = 15  # drawers 1..15 of every character train, 16..20 test (the paper's split)


def data_files(name: str, root: str | Path, split: str) -> list[Path]:
    """The ``.npz`` files that hold one split of a data set.

    Args:
        name: one of :data:`DATASETS`.
        root: the data set's folder (e.g. ``../shared/data/mnist``) or the folder above it.
        split: "train" or "test"; CelebA also "val"; Omniglot also "background" and "evaluation" (Lake's split of
            unseen alphabets; its "train"/"test" are the paper's split by drawer).
    Returns:
        The files' paths (not checked for existence).
    """
    if name not in DATASETS:
        raise UnknownModelError(f"unknown data set {name!r}; known data sets are {list(DATASETS)}")
    if split not in DATA_FILES[name]:
        raise InvalidInputError(f"split must be one of {sorted(DATA_FILES[name])} for {name}, got {split!r}")
    root = Path(root)
    if (root / name).is_dir():
        root = root / name
    return [root / file for file in DATA_FILES[name][split]]


def load_arrays(name: str, root: str | Path, split: str) -> dict[str, np.ndarray]:
    """The per-image arrays of one split of MNIST or Omniglot (``images``, ``labels``, and Omniglot's
    ``char_ids``, ``sample_idx`` and ``alphabet``), concatenated over its files and selected by drawer for
    Omniglot's paper split, whose ``labels`` number all 1,623 characters (``char_ids - 1``)."""
    if name not in ("mnist", "omniglot"):
        raise InvalidInputError(f"load_arrays reads mnist or omniglot, got {name!r}")
    parts = []
    for file in data_files(name, root, split):
        with np.load(file, allow_pickle=False) as data:
            stored = dict(data)  # each access to an npz key reads the array from the file again
        parts.append({key: value for key, value in stored.items() if len(value) == len(stored["images"])})
    arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    if name == "omniglot" and len(parts) > 1:
        # Each file numbers its characters from 0: the paper's split holds both files, whose labels would then name
        # two characters each. Numbered as char_ids (global, 1..1623) from 0; the alphabets are numbered globally.
        arrays["labels"] = (arrays["char_ids"] - 1).astype(arrays["labels"].dtype)
    if name == "omniglot" and split in ("train", "test"):
        keep = (arrays["sample_idx"] <= OMNIGLOT_TRAIN_DRAWERS) == (split == "train")
        arrays = {key: value[keep] for key, value in arrays.items()}
    return arrays


def omniglot_by_drawer(root: str | Path, characters: int = 67,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Omniglot's evaluation alphabets split by drawer, for fine-tuning on new characters: drawers 1-15 of
    ``characters`` characters chosen with ``seed``, drawers 16-20 of the same characters (held out), and drawers
    1-15 of every character; uint8 (N, 1, 28, 28) each."""
    arrays = load_arrays("omniglot", root, "evaluation")
    known = np.unique(arrays["char_ids"])
    if check_count(characters, "characters") > len(known):
        raise InvalidInputError(f"characters must be at most the {len(known)} characters of the evaluation alphabets, "
                                f"got {characters}")
    chosen = np.random.default_rng(seed).choice(known, characters, replace=False)
    mine, early = np.isin(arrays["char_ids"], chosen), arrays["sample_idx"] <= OMNIGLOT_TRAIN_DRAWERS
    images = torch.from_numpy(arrays["images"])[:, None]
    return images[mine & early], images[mine & ~early], images[early]


def load_dataset(name: str, root: str | Path, split: str = "train", limit: int | None = None) -> torch.Tensor:
    """Load one split of a data set from the shared ``.npz`` files as uint8 (N, C, H, W).

    Args:
        name: one of :data:`DATASETS`.
        root: the data set's folder (e.g. ``../shared/data/mnist``) or the folder above it.
        split: see :func:`data_files`.
        limit: keep only the first ``limit`` images.
    Returns:
        uint8 tensor (N, C, H, W); scale by 1/255 for [0, 1].
    """
    limit = None if limit is None else check_count(limit, "limit")
    if name in ("mnist", "omniglot"):
        images = load_arrays(name, root, split)["images"][:limit, ..., None]
    else:
        with np.load(data_files(name, root, split)[0], allow_pickle=False) as data:
            if name == "cifar10":
                images = _decode_jpegs(data, np.arange(len(data["offsets"]) - 1)[:limit])
            else:
                images = _decode_jpegs(data, np.flatnonzero(data["repo_split"] == split)[:limit], celeba_transform)
    return rearrange(torch.from_numpy(images), "n h w c -> n c h w").contiguous()
