"""Training checkpoints that survive being killed at any moment and load without executing code.

A checkpoint is a folder ``step-XXXXXXXX`` holding safetensors files (tensors: weights, optimizer moments, RNG
states, data order) and ``state.json`` (everything else). It is written completely, flushed, and only then named
by the pointer file ``latest.json``, itself replaced atomically; so a SIGKILL during a save leaves the previous
checkpoint in force. Older checkpoint folders are removed after the pointer moves.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CorruptWeightsError, UnwritablePathError

POINTER = "latest.json"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _write_json(path: Path, document: Any) -> None:
    # A new file, never one that is there: a checkpoint folder handed over for a resume may hold a link at this
    # name (.latest.json.tmp), and writing through it overwrote the file it points to, outside the folder.
    path.unlink(missing_ok=True)
    with path.open("x") as file:
        file.write(json.dumps(document))
    _fsync_file(path)


def save_checkpoint(directory: str | Path, name: str, tensors: dict[str, dict[str, torch.Tensor]],
                    state: dict[str, Any]) -> Path:
    """Write checkpoint ``name`` under ``directory`` and make it the latest.

    Args:
        directory: the run's checkpoint folder.
        name: the checkpoint's folder name (e.g. "step-00000120").
        tensors: file stem -> {key: tensor}; each becomes ``<stem>.safetensors``.
        state: JSON-serialisable state, written as ``state.json``.
    Returns:
        The checkpoint folder: ``name``, or ``name.1``, ``name.2``... when a folder ``name`` exists already.
    Raises:
        UnwritablePathError: the checkpoint cannot be written (a full disk); the one in force stays, and nothing of
        the new one is left.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    # Never remove a folder the pointer may name before the new one is in place: a kill in between would leave no
    # checkpoint at all. A name saved twice (the same step) gets a fresh folder instead.
    for suffix in itertools.count(1):
        if not final.exists():
            break
        final = directory / f"{name}.{suffix}"
    partial = directory / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir()
        for stem, group in tensors.items():
            save_file({k: v.detach().cpu().contiguous() for k, v in group.items()}, partial / f"{stem}.safetensors")
            _fsync_file(partial / f"{stem}.safetensors")
        _write_json(partial / "state.json", state)
        os.replace(partial, final)
        # The pointer lists the tensor files too, so that a load notices one that went missing since.
        _write_json(directory / f".{POINTER}.tmp", {"latest": final.name, "files": sorted(tensors)})
        os.replace(directory / f".{POINTER}.tmp", directory / POINTER)
    except (OSError, SafetensorError) as error:
        # A full disk: the pointer still names the checkpoint in force, and nothing of this one is left to fill it
        for folder in (partial, final):
            shutil.rmtree(folder, ignore_errors=True)
        (directory / f".{POINTER}.tmp").unlink(missing_ok=True)
        raise UnwritablePathError(f"cannot write the checkpoint {final.name} into {str(directory)!r}: "
                                  f"{error}") from error
    # Earlier checkpoints, and what a save killed part way left (it may have had another name)
    for old in directory.iterdir():
        if old.is_dir() and old.name != final.name and (old.name.startswith("step-") or old.name.endswith(".partial")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def has_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a checkpoint to resume from (its pointer file)."""
    return (Path(directory) / POINTER).is_file()


def load_checkpoint(directory: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None:
    """The latest checkpoint under ``directory`` as (tensors by file stem, state), or None when there is none.

    Raises:
        CorruptWeightsError: the pointer, the state or a tensor file is unreadable or missing (one the pointer
            lists); saves never leave one so, so the folder was damaged after the fact.
    """
    directory = Path(directory)
    file = directory / POINTER
    if not has_checkpoint(directory):
        return None
    try:
        pointer = json.loads(file.read_text())
        names = [pointer["latest"], *pointer.get("files", [])]
        if not all(isinstance(name, str) and name not in ("", ".", "..") and name == Path(name).name
                   for name in names):
            raise ValueError(f"it names {names}, and each must be a file or folder name inside {directory}")
        folder = directory / pointer["latest"]
        file = folder / "state.json"
        state = json.loads(file.read_text())
        if not isinstance(state, dict):
            raise TypeError(f"a JSON object is expected, got a JSON {type(state).__name__}")
        tensors = {}
        for stem in pointer.get("files", sorted(path.stem for path in folder.glob("*.safetensors"))):
            file = folder / f"{stem}.safetensors"
            if not file.is_file():
                raise FileNotFoundError("the file is missing")
            tensors[stem] = load_file(file)
    except (OSError, KeyError, TypeError, ValueError, RecursionError, SafetensorError) as error:
        raise CorruptWeightsError(f"the checkpoint in {str(directory)!r} is unreadable (corrupted or truncated?): "
                                  f"{file}: {error!r}") from error
    return tensors, state


def optimizer_to_checkpoint(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into tensors (for safetensors) and JSON."""
    state = optimizer.state_dict()
    flat = {f"{index}.{key}": value for index, values in state["state"].items() for key, value in values.items()}
    tensors = {key: value for key, value in flat.items() if isinstance(value, torch.Tensor)}
    scalars = {key: value for key, value in flat.items() if not isinstance(value, torch.Tensor)}
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_checkpoint(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                              meta: dict[str, Any]) -> None:
    """Restore what :func:`optimizer_to_checkpoint` split."""
    state: dict[int, dict[str, Any]] = {}
    for flat, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, key = flat.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    # The saved groups' settings are loaded with them, but whether the update is fused is this optimizer's (a
    # checkpoint of earlier code was not): load_state_dict then puts each step counter where that kernel wants it.
    groups = [{**saved, "fused": group.get("fused")} for saved, group in zip(meta["param_groups"],
                                                                             optimizer.param_groups, strict=False)]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    # Saved contiguous, but a parameter may be channels-last (the encoder's and decoder's convolutions): torch's
    # fused Adam walks a parameter's memory and its state's in step, so each state tensor takes its parameter's
    # layout again (with the state contiguous, it paired the wrong values).
    for group in optimizer.param_groups:
        for param in group["params"]:
            values = optimizer.state.get(param, {})
            for key, value in values.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    values[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
