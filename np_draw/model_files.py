"""A model folder's files: ``config.json`` and ``model.safetensors`` (beside the ``README.md`` card of
:func:`np_draw.hub.model_card`).

They are written atomically and read back as JSON and safetensors only, never pickle.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from huggingface_hub import ModelCard
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import NPDrawConfig
from .errors import ConfigMismatchError, CorruptWeightsError, MissingFileError, UnwritablePathError

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
# The files a model is built from, so a load fails without them; the card (README.md), where there is one, is read
# only for what it records (hub.card_licence, hub.card_facts), never to build the model.
LOADED_FILES = (CONFIG_NAME, WEIGHTS_NAME)


def write_together(writers: Mapping[Path, Callable[[str], object]]) -> None:
    """Write each file to a temporary file beside it, then rename them all into place: a reader never sees half a
    file, and a save that fails (a full disk) leaves the folder's files as they were, not new weights beside an old
    config. A rename that fails after others succeeded puts back the files already replaced, from the backups made
    before the first rename."""
    staged: dict[Path, Path] = {}
    kept: dict[Path, Path] = {}  # each file there before: its backup
    replaced: list[Path] = []
    try:
        for path, write in writers.items():
            tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except OSError as error:
                raise UnwritablePathError(f"cannot write {str(path)!r}: {error.strerror}") from error
            staged[path] = tmp
            # The mode any new file gets (0666 less the umask, read without setting the process-wide umask, which
            # other threads create files with), kept through writers that replace the file (safetensors' is 0600)
            mode = os.fstat(fd).st_mode & 0o777
            os.close(fd)
            write(str(tmp))
            os.chmod(tmp, mode)
        for path in staged:
            if path.is_symlink() or path.is_file():
                kept[path] = _keep(path)
        for path, tmp in staged.items():
            os.replace(tmp, path)
            replaced.append(path)
    except BaseException:
        for path in replaced:  # best effort: the error that stopped the renames may stop these too
            with contextlib.suppress(OSError):
                if path in kept:
                    os.replace(kept.pop(path), path)
                else:
                    path.unlink()
        for leftover in [*staged.values(), *kept.values()]:
            leftover.unlink(missing_ok=True)
        raise
    for backup in kept.values():
        with contextlib.suppress(OSError):  # the save is done: a backup left over is only a hidden file
            backup.unlink(missing_ok=True)


def _keep(path: Path) -> Path:
    """A hard link to ``path`` (to a symlink itself, when it is one) beside it, or a copy where the file system has
    no hard links."""
    backup = path.parent / f".{path.name}.{secrets.token_hex(8)}.old"
    try:
        os.link(path, backup, follow_symlinks=not path.is_symlink())
    except (OSError, NotImplementedError):  # NotImplementedError: a link to a symlink, on Windows
        try:
            shutil.copy2(path, backup)
        except BaseException:  # a copy cut short (a full disk) is no backup
            backup.unlink(missing_ok=True)
            raise
    return backup


def write_model_files(config: NPDrawConfig, state: Mapping[str, torch.Tensor], card: ModelCard,
                      folder: str | Path) -> None:
    """Write ``config.json``, ``model.safetensors`` and the ``README.md`` card into ``folder``, all or none: a save
    that fails part way (a full disk) leaves the files that were there.

    Args:
        config: the model's config.
        state: the model's state dict; the file holds its tensors on the CPU, contiguous (so a channels-last
            layout in memory does not change the file).
        card: the model card.
        folder: an existing folder.
    Raises:
        UnwritablePathError: ``folder`` does not take new files.
    """
    weights = Path(folder) / WEIGHTS_NAME
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    write_together({weights: tensors_writer(weights, tensors, {"format": "pt"}),
                    weights.with_name(CONFIG_NAME): config.to_json, weights.with_name(CARD_NAME): card.save})


def tensors_writer(path: Path, tensors: Mapping[str, torch.Tensor],
                   metadata: Mapping[str, str]) -> Callable[[str], None]:
    """A writer for :func:`write_together` of ``tensors`` (contiguous, on the CPU) as the safetensors file ``path``:
    safetensors' own error (a full disk) is an UnwritablePathError naming ``path``, not the staged file."""
    def write(staged: str) -> None:
        try:
            save_file(dict(tensors), staged, metadata=dict(metadata))
        except SafetensorError as error:
            raise UnwritablePathError(f"cannot write {str(path)!r}: {error}") from error
    return write


def check_model_folder(folder: str | Path) -> Path:
    """``folder`` as a Path, after checking that it holds config.json and model.safetensors (MissingFileError)."""
    folder = Path(folder)
    for name in LOADED_FILES:
        if not (folder / name).is_file():
            raise MissingFileError(f"{str(folder)!r} has no {name}; a model folder holds {CONFIG_NAME} and "
                                    f"{WEIGHTS_NAME} (see NPDraw.save_pretrained)")
    return folder


def folder_state(folder: str | Path) -> tuple:
    """What a save over the model folder ``folder`` changes of the files a load reads (each one's inode, size and
    times, or None for a missing one), to tell whether they were replaced while they were read."""
    state: list[tuple[int, ...] | None] = []
    for name in LOADED_FILES:
        try:
            info = (Path(folder) / name).stat()
        except OSError:
            state.append(None)
        else:
            state.append((info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return tuple(state)


def load_config(folder: str | Path) -> NPDrawConfig:
    """The config of a model folder.

    Args:
        folder: a folder holding config.json and model.safetensors.
    Returns:
        The config, checked field by field.
    Raises:
        MissingFileError: config.json or model.safetensors is missing. InvalidInputError: config.json is not a valid
        config (bad JSON, unknown keys, bad values).
    """
    return NPDrawConfig.from_json(check_model_folder(folder) / CONFIG_NAME)


# The floating dtypes a safetensors header names, as torch dtypes
STORED_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def load_weights(build: Callable[[], torch.nn.Module], folder: str | Path, *, strict: bool = True,
                 stored_dtype: bool = False, lists: Mapping[str, int] | None = None,
                 opened: Callable[[], object] | None = None) -> torch.nn.Module:
    """The model ``build()`` makes, holding the weights of ``folder``, on the CPU.

    ``build`` runs first on the meta device, where a model costs nothing, and the names, shapes and dtypes of that
    skeleton's tensors are compared with the weights' safetensors header; so a config that does not fit its weights
    (or asks for an absurd size) is refused before anything is allocated. Only then is the model built and filled.

    Args:
        build: makes the model the weights are for (e.g. ``lambda: NPDraw(config)``).
        folder: the model folder.
        strict: a missing or unexpected name is an error; False logs them, and the missing weights keep their fresh
            initialisation.
        stored_dtype: make the model's floating tensors the dtype the part bank is stored in (the model's dtype,
            :attr:`NPDraw.dtype`) instead of ``build``'s; weights stored in other dtypes are converted to it, with a
            warning.
        lists: the length the config gives each of the model's module lists, by name (e.g. {"prior.blocks": 8}),
            checked (with ``strict``) against the weights' names before the skeleton is built: building 100,000
            layers takes minutes even on the meta device.
        opened: called once the weights file is open (its header read and its data mapped, so that a save
            replacing it from then on changes nothing of what is loaded), before anything is built: e.g. to check
            that the file is still the one that was there when the config was read.
    Returns:
        The model, with the weights.
    Raises:
        ConfigMismatchError: a name is missing or unexpected (with ``strict``), a shape differs, a floating-point
        tensor is stored as integers or the other way round, or the config asks for a tensor too large to exist
        even on the meta device. CorruptWeightsError: model.safetensors is truncated or not safetensors.
    """
    try:
        weights = safe_open(Path(folder) / WEIGHTS_NAME, framework="pt")
    except (SafetensorError, OSError) as error:
        raise CorruptWeightsError(f"{Path(folder) / WEIGHTS_NAME} is not a readable safetensors file (corrupted or "
                                  f"truncated?): {error}") from error
    with weights:
        if opened is not None:
            opened()
        stored = {key: weights.get_slice(key) for key in weights.keys()}  # noqa: SIM118 - not a dict
        for name, length in (lists or {}).items() if strict else ():
            held = len({key[len(name) + 1:].split(".")[0] for key in stored if key.startswith(f"{name}.")})
            if held != length:
                raise ConfigMismatchError(f"the weights in {folder} do not match their config: it makes {name} "
                                          f"{length} long, {WEIGHTS_NAME} holds {held}")
        try:
            with torch.device("meta"):
                skeleton = build()
        except RuntimeError as error:  # sizes whose tensors overflow even there (2^63 bytes)
            raise ConfigMismatchError(f"the weights in {folder} do not match their config: it asks for tensors "
                                      f"too large to build ({error})") from error
        names = check_weights(skeleton.state_dict(),
                              {key: (view.get_shape(), view.get_dtype().startswith(("F", "BF")))
                               for key, view in stored.items()},
                              f"the weights in {folder} do not match their config", WEIGHTS_NAME, strict=strict)
        if names:
            logger.warning("loading %s with strict=False: %s; the missing weights keep their initial values", folder,
                           names)
        with torch.random.fork_rng(devices=[]):  # the initial values are overwritten: loading draws nothing
            model = build()
        if stored_dtype and "bank.parts" in stored:
            dtype = STORED_DTYPES.get(stored["bank.parts"].get_dtype(), torch.float32)
            others = sorted({view.get_dtype() for view in stored.values() if view.get_dtype() in STORED_DTYPES}
                            - {stored["bank.parts"].get_dtype()})
            if others:
                logger.warning("%s holds weights in %s beside the part bank's %s: all are loaded in %s", folder,
                               ", ".join(others), stored["bank.parts"].get_dtype(), dtype)
            model.to(dtype)
        model.load_state_dict({key: weights.get_tensor(key) for key in stored}, strict=strict)
    return model


def check_weights(expected: Mapping[str, torch.Tensor], stored: Mapping[str, tuple[list[int], bool]], problem: str,
                  source: str, *, strict: bool = True) -> str:
    """Check stored tensors against a model's ``state_dict()`` before any is loaded into it.

    Args:
        expected: the model's tensors (a meta-device skeleton's will do: only shapes and dtypes are read).
        stored: for each stored name, its shape and whether it holds floating-point numbers.
        problem: the start of the error message, e.g. "cannot resume from FOLDER".
        source: the file the stored tensors come from, named in the message.
        strict: a missing or unexpected name is an error; False returns their description instead.
    Returns:
        "" when the names match, else (only without ``strict``) which names are missing and unexpected.
    Raises:
        ConfigMismatchError: a name is missing or unexpected (with ``strict``), a shape differs, or a floating-point
        tensor is stored as integers or the other way round.
    """
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    names = f"missing keys {_preview(missing)}, unexpected keys {_preview(unexpected)}" if missing or unexpected else ""
    if names and strict:
        raise ConfigMismatchError(f"{problem}: {names}")
    for key in sorted(set(expected) & set(stored)):
        (shape, floating), tensor = stored[key], expected[key]
        if list(shape) != list(tensor.shape):
            raise ConfigMismatchError(f"{problem}: {key} has shape {list(shape)} in {source}, the config makes it "
                                      f"{list(tensor.shape)}")
        if floating != tensor.is_floating_point():
            raise ConfigMismatchError(f"{problem}: {key} is stored as {'floats' if floating else 'integers'} in "
                                      f"{source}, the model holds {'floats' if tensor.is_floating_point() else 'integers'}"
                                      " there")
    return names


def _preview(keys: list[str], limit: int = 5) -> str:
    return f"{keys[:limit]}{f'... ({len(keys)} in all)' if len(keys) > limit else ''}"
