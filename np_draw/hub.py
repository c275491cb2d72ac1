"""Saving and loading models: a folder with ``config.json`` and ``model.safetensors``.

Only JSON and safetensors are ever read, so loading a model runs no code from its files.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import NPDrawConfig

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    # mkstemp creates the file private (0600); give it the permissions any new file gets.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_folder(config: NPDrawConfig, state: dict[str, torch.Tensor], folder: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created if needed); returns the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create the output folder {str(folder)!r}: {error.strerror}") from error
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    _atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    _atomic_write(folder / CONFIG_NAME, lambda tmp: config.to_json(tmp))
    return folder


def load_folder(folder: str | Path) -> tuple[NPDrawConfig, dict[str, torch.Tensor]]:
    """Read the config and the CPU weights from a folder written by :func:`save_folder`.

    Raises:
        FileNotFoundError: a file is missing. ValueError: a file is corrupted or not what it should be.
    """
    folder = Path(folder)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{str(folder)!r} has no {name}; a model folder holds {CONFIG_NAME} and "
                                    f"{WEIGHTS_NAME} (see NPDraw.save_pretrained)")
    try:
        config = NPDrawConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"{folder / CONFIG_NAME} is not a valid NP-DRAW config: {error}") from error
    try:
        state = load_file(folder / WEIGHTS_NAME, device="cpu")
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{folder / WEIGHTS_NAME} is not a readable safetensors file (corrupted or truncated?): "
                         f"{error}") from error
    return config, state
