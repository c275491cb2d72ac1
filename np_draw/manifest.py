"""The weights manifest: the pretrained models by name, their Hub repo and pinned commit, whether the package
bundles them, and the sha256 and size of each of their files, which every copy is checked against before anything
reads it.

The package's manifest is ``np_draw/weights/manifest.json`` (``$NP_DRAW_MANIFEST`` names another), with the bundled
model folders beside it in ``<manifest folder>/<name>/``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub.utils.sha import sha_fileobj

from .errors import InvalidInputError, MissingFileError
from .model_files import CARD_NAME, LOADED_FILES, check_model_folder

MANIFEST_ENV = "NP_DRAW_MANIFEST"
PACKAGE_MANIFEST = Path(__file__).parent / "weights" / "manifest.json"
REPO_ID = r"[A-Za-z0-9][\w.-]*/[\w.-]+"
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def manifest_path() -> Path:
    """The weights manifest in use: the file ``$NP_DRAW_MANIFEST`` names (read at each call), else the package's."""
    return Path(os.environ.get(MANIFEST_ENV) or PACKAGE_MANIFEST)


def read_manifest(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The models of a weights manifest, by name, each checked for the fields loading relies on.

    Args:
        path: the manifest file; None for :func:`manifest_path`.
    Returns:
        ``{name: entry}``; an entry has ``repo_id``, ``revision`` (a 40-hex commit, null while not on the Hub),
        ``bundled``, ``files`` (``{filename: {"sha256", "size"}}``, empty while unpublished) and descriptive fields
        (dataset, license, paper, metrics, paper_metrics).
    Raises:
        MissingFileError: there is no file at ``path``. InvalidInputError: it is not a valid manifest.
    """
    path = Path(path) if path is not None else manifest_path()
    try:
        models = json.loads(path.read_text())["models"]
    except FileNotFoundError as error:
        raise MissingFileError(f"no weights manifest at {str(path)!r}") from error
    # ValueError: bad JSON or UTF-8; OSError: a folder; RecursionError: arrays nested thousands deep
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise InvalidInputError(f"{path} is not a weights manifest (a JSON object with a 'models' object): "
                                f"{error!r}") from error
    if not isinstance(models, dict):
        raise InvalidInputError(f"{path}: 'models' must be an object, got {type(models).__name__}")
    for name, entry in models.items():
        if problem := _entry_problem(entry):
            raise InvalidInputError(f"{path}: model {name!r}: {problem}")
    return models


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with one manifest entry, or None."""
    if not isinstance(entry, dict):
        return f"must be an object, got {type(entry).__name__}"
    if not re.fullmatch(REPO_ID, str(entry.get("repo_id"))):
        return f"repo_id must be 'owner/name', got {entry.get('repo_id')!r}"
    if "revision" not in entry or entry["revision"] is not None and not _COMMIT.fullmatch(str(entry["revision"])):
        got = repr(entry["revision"]) if "revision" in entry else "nothing"
        return f"revision must be a 40-hex commit id, or null while unpublished, got {got}"
    if not isinstance(entry.get("bundled"), bool):
        return f"bundled must be true or false, got {entry.get('bundled')!r}"
    if entry.get("files") and not entry["bundled"] and entry["revision"] is None:
        return "files that are not bundled must be downloadable: give the Hub commit that holds them as revision"
    files = entry.get("files")
    if not isinstance(files, dict) or not all(_is_file_record(record) for record in files.values()):
        return f"files must map file names to {{'sha256': 64 hex digits, 'size': bytes}}, got {files!r}"
    if (files or entry["bundled"]) and not set(LOADED_FILES) <= set(files):
        return f"files must list {list(LOADED_FILES)} (or be empty while unpublished), got {sorted(files)}"
    return None


def _is_file_record(record: Any) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("sha256"), str)
            and bool(_SHA256.fullmatch(record["sha256"])) and type(record.get("size")) is int and record["size"] >= 0)


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file, in hex, read in chunks so a large file is never held in memory."""
    with open(path, "rb") as file:
        return sha_fileobj(file).hex()


def describe_files(folder: str | Path) -> dict[str, dict[str, Any]]:
    """The manifest's ``files`` record of a saved model folder.

    To publish a checkpoint: ``save_pretrained`` (and ``push_to_hub``), then put this record, the repo id and the
    commit into the manifest entry.

    Args:
        folder: a folder written by ``NPDraw.save_pretrained``.
    Returns:
        ``{filename: {"sha256": hex, "size": bytes}}`` for config.json, model.safetensors and README.md if present.
    Raises:
        MissingFileError: config.json or model.safetensors is missing.
    """
    folder = check_model_folder(folder)
    names = [*LOADED_FILES, CARD_NAME] if (folder / CARD_NAME).is_file() else list(LOADED_FILES)
    return {name: {"sha256": sha256_file(folder / name), "size": (folder / name).stat().st_size} for name in names}


def file_problem(path: Path, record: Mapping[str, Any]) -> str | None:
    """How the file ``path`` differs from its manifest ``record`` (``{"sha256": hex, "size": bytes}``), for an error
    message, or None when it matches; the size is compared first, for free."""
    if not path.is_file():
        return "the file is missing"
    if (size := path.stat().st_size) != record["size"]:
        return f"its size is {size} bytes, expected {record['size']}"
    if (digest := sha256_file(path)) != record["sha256"]:
        return f"its sha256 is {digest}, expected {record['sha256']}"
    return None
