"""Models on the Hugging Face Hub, beside what ``huggingface_hub.ModelHubMixin`` does for ``NPDraw`` (uploading,
loading a folder): the model card, and :func:`resolve_pretrained`, which turns what a user gives
``NPDraw.from_pretrained`` into a verified local folder.

A name is, in this order: a name from the weights manifest (:mod:`np_draw.manifest`), even where a folder has that
name, unless it is written as a path (``./mnist``, a ``Path``): its copy bundled in the package, else a download at
the manifest's pinned commit, each file checked against the manifest's sha256 and size before anything reads it; a
local folder; a Hub repo id ``owner/name[@revision]``. Downloads go through ``hf_hub_download``
into the usual Hugging Face cache, so ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` work as for
any Hub model.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import HfApi, ModelCard, ModelCardData, constants, hf_hub_download, try_to_load_from_cache

# huggingface_hub.utils holds these from 0.x to 2.x (huggingface_hub.errors and RemoteEntryNotFoundError are 1.0's).
from huggingface_hub.utils import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    validate_repo_id,
)

from .config import NPDrawConfig
from .errors import (
    CorruptWeightsError,
    InvalidInputError,
    InvalidTypeError,
    UnknownModelError,
    UnwritablePathError,
    WeightsUnavailableError,
    check_flags,
)
from .manifest import MANIFEST_ENV, PACKAGE_MANIFEST, REPO_ID, file_problem, manifest_path, read_manifest
from .model_files import CARD_NAME, CONFIG_NAME, LOADED_FILES, WEIGHTS_NAME

logger = logging.getLogger(__name__)

LIBRARY_NAME = "np-draw"
CARD_TEMPLATE = Path(__file__).parent / "model_card.md"
CARD_KEYS = ("dataset", "metrics", "notes", "training", "license", "license_name", "license_link", "data_license",
             "repo_id")
_LICENCE_KEYS = ("license", "license_name", "license_link")
_HUB_NAME = re.compile(rf"(?P<repo_id>{REPO_ID})(?:@(?P<revision>[\w./-]+))?")
# What reaching the Hub can raise besides its own errors (a refused connection, a download cut short, a full disk):
# OSError with requests (huggingface_hub < 1.0), and from 1.0 the HTTP client's error base, which is not one.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError,)
for _client in ("httpx", "httpx2"):
    with contextlib.suppress(ImportError, AttributeError):  # AttributeError: a module of that name without it
        TRANSPORT_ERRORS += (importlib.import_module(_client).HTTPError,)


def model_card(config: NPDrawConfig, card: Mapping[str, Any] | None = None) -> ModelCard:
    """The model card of a saved model: Hub metadata, what the model is, its data, metrics, notes, how it was
    trained and how to load it, its license and the paper to cite.

    Args:
        config: the model's config.
        card: optional facts, all strings but ``metrics`` and ``training``: ``dataset``, ``metrics`` ({name: number
            or string}), ``notes``, ``training`` (a JSON-serialisable dict of how the weights were made: git commit,
            config, seed, data sha256, wall time, machine), ``license`` (a Hub license id, default "mit"; "other"
            needs ``license_name`` and ``license_link``), ``data_license`` (the terms of the training data, which
            weights trained on it inherit) and ``repo_id`` (used in the loading example).
    Returns:
        The card; ``.save(path)`` writes it as ``README.md``.
    Raises:
        InvalidInputError, InvalidTypeError: as :func:`check_card`.
    """
    card = check_card(card)
    data = ModelCardData(license=card.get("license", "mit"), license_name=card.get("license_name"),
                         license_link=card.get("license_link"), library_name=LIBRARY_NAME,
                         pipeline_tag="unconditional-image-generation",
                         tags=["np-draw", "image-generation", "part-based", "pytorch"])
    facts = {key: card.get(key) for key in ("dataset", "metrics", "notes", "repo_id", "data_license")}
    training = json.dumps(card["training"], indent=2) if "training" in card else None
    return ModelCard.from_template(data, template_path=CARD_TEMPLATE, config=config, training=training, **facts)


def card_licence(folder: str | Path) -> dict[str, str]:
    """The licence terms of the model card in ``folder`` (``license``, ``license_name``, ``license_link`` from its
    metadata, ``data_license`` from its License section), which weights loaded from it and saved again inherit;
    empty when there is no card or it says nothing."""
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        return {}
    try:
        card = ModelCard.load(path)
    # Not a card huggingface_hub can read (its YAML metadata broken, or nested thousands deep): nothing to inherit
    except (ValueError, OSError, yaml.YAMLError, RecursionError):
        return {}
    terms = {key: value for key in _LICENCE_KEYS if isinstance(value := getattr(card.data, key, None), str)}
    if terms.get("license") == "other" and not {"license_name", "license_link"} <= set(terms):
        terms = {}
    data = re.search(r"^The weights: .*? The training data: (.+)$", card.text, re.MULTILINE)
    if data:
        terms["data_license"] = data.group(1).strip()
    return terms


def card_facts(folder: str | Path) -> dict[str, Any]:
    """What the model card in ``folder`` says of the weights: ``dataset`` (its Data section), ``metrics`` (its
    Metrics table, {name: value}, numbers as numbers), ``notes`` (its Notes section, where ``np-draw fit`` says which model a
    fine-tune started from) and ``training`` (the training record, a dict: ``np-draw fit`` records its ``crop``
    there); empty when there is no card, and a key left out when its section is missing, says nothing was recorded
    or is not JSON."""
    path = Path(folder) / CARD_NAME
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return {}
    facts = {}
    for key, title in (("dataset", "Data"), ("notes", "Notes")):
        section = re.search(rf"^## {title}\n\n(.+?)\n*(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
        if section and section.group(1).strip() != "Not recorded.":
            facts[key] = section.group(1).strip()
    table = re.search(r"^## Metrics\n\n\| metric \| value \|\n\|---\|---\|\n((?:\|.*\|[ \t]*\n)*)", text,
                      re.MULTILINE)
    if table:
        # Cells split at the '|' the card does not escape (model_card writes one in a name or value as '\|'); a row
        # of a card edited by hand that is not two cells is left out, and more than two keep the rest as the value
        rows = [[cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
                for line in table.group(1).splitlines()]
        facts["metrics"] = {cells[0]: _number(" | ".join(cells[1:])) for cells in rows if len(cells) >= 2}
    # The first JSON block after the first Training heading, found in two searches: one pattern spanning both (a
    # lazy gap between them) was tried from every heading, so a card of 20,000 "## Training" lines and no block (a
    # 240 kB README.md from a Hub repo) took 25 s to read, and ten times as many lines 100 times longer.
    heading = re.search(r"^## Training\n", text, re.MULTILINE)
    record = heading and re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL).search(text, heading.end())
    try:
        training = json.loads(record.group(1)) if record else None
    except (ValueError, RecursionError):
        training = None
    if isinstance(training, dict):
        facts["training"] = training
    return facts


def _number(text: str) -> int | float | str:
    """A metric's value as the card writes it: a number as a number (as the manifest holds them), else the text."""
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            if math.isfinite(value := kind(text)):  # "nan" and "inf" stay text: JSON has no such numbers
                return value
    return text


def with_licence(card: Mapping[str, Any] | None, inherited: Mapping[str, str]) -> dict[str, Any]:
    """``card`` with the licence terms ``inherited`` from the weights' source where it gives none of its own (a
    ``license`` of its own replaces the inherited name and link too)."""
    card = dict(card or {})
    kept = {key: value for key, value in inherited.items()
            if key not in card and not ("license" in card and key in _LICENCE_KEYS)}
    return {**kept, **card}


def check_card(card: Mapping[str, Any] | None, repo_id: str | None = None) -> dict[str, Any]:
    """The facts for :func:`model_card`, checked before anything is written or sent.

    Args:
        card: the facts (see :func:`model_card`), or None for none.
        repo_id: for an upload, the Hub repo "owner/name", which the card's loading example names unless ``card``
            gives a repo_id; None for a local save.
    Returns:
        The facts as a dict (empty for None), with ``repo_id`` when it is given.
    Raises:
        InvalidInputError: ``repo_id`` is not "owner/name", an unknown key, or license "other" without
        ``license_name`` and ``license_link`` (the Hub needs both). InvalidTypeError: ``card`` or one of its fields
        has the wrong type.
    """
    if repo_id is not None and (problem := _hub_id_problem(repo_id)):
        raise InvalidInputError(f"repo_id must be a Hub repo id 'owner/name' the Hub accepts, got {repo_id!r}: "
                                f"{problem}")
    facts = {} if repo_id is None else {"repo_id": repo_id}
    if card is None:
        return facts
    if not isinstance(card, Mapping):
        raise InvalidTypeError(f"card must be a dict or None, got {type(card).__name__}")
    unknown = sorted(set(card) - set(CARD_KEYS))
    if unknown:
        raise InvalidInputError(f"card has unknown keys {unknown}; known keys are {list(CARD_KEYS)}")
    for key, value in card.items():
        if key == "metrics":
            if not isinstance(value, Mapping) or not all(isinstance(v, (int, float, str)) for v in value.values()):
                raise InvalidTypeError(f"card['metrics'] must map metric names to numbers or strings, got {value!r}")
        elif key == "training":
            if not isinstance(value, Mapping):
                raise InvalidTypeError(f"card['training'] must be a dict, got {type(value).__name__}")
            try:
                json.dumps(value)
            except TypeError as error:
                raise InvalidTypeError(f"card['training'] must be JSON-serialisable: {error}") from None
        elif not isinstance(value, str):
            raise InvalidTypeError(f"card[{key!r}] must be a str, got {type(value).__name__}")
    if card.get("license") == "other" and not {"license_name", "license_link"} <= set(card):
        raise InvalidInputError("card['license'] 'other' needs card['license_name'] and card['license_link'], as the "
                                "Hub does")
    return {**facts, **card}


def _hub_id_problem(repo_id: Any) -> str | None:
    """Why the Hub would refuse the repo id, or None; said before any request, where huggingface_hub would raise
    its HFValidationError, which names no argument."""
    if not isinstance(repo_id, str) or not re.fullmatch(REPO_ID, repo_id):
        return "it is not 'owner/name'"
    try:
        validate_repo_id(repo_id)  # no '..' or '--', no '-' or '.' at either end, at most 96 characters
    except HFValidationError as error:
        return str(error)
    return None


def _revision_problem(revision: str) -> str | None:
    """Why ``revision`` cannot name a branch, tag or commit, or None. huggingface_hub records a branch's commit in
    its cache at ``refs/<revision>``, the revision taken as a path: "../../x", which a mirror may answer, wrote a file
    outside the cache. Git's own rules refuse such a name (no '..', no part starting with '.', no empty part, no '\\'
    or ':'): on Windows a backslash divides a path too, and a path with a drive ("C:\\x") replaces the cache's."""
    if any(bad in revision for bad in ("..", "\\", ":")) \
            or any(not part or part.startswith(".") for part in revision.split("/")):
        return "a Hub revision has no '..', '\\' or ':', no empty part and no part starting with '.'"
    return None


def is_public_repo(api: HfApi, repo_id: str) -> bool:
    """Whether the Hub repo ``repo_id`` exists and is public; False when it does not exist for ``api``'s token."""
    try:
        return not api.repo_info(repo_id).private
    except RepositoryNotFoundError:
        return False


def resolve_pretrained(name_or_path: str | os.PathLike, *, revision: str | None = None,
                       cache_dir: str | Path | None = None, local_files_only: bool = False,
                       force_download: bool = False, token: str | bool | None = None,
                       manifest: str | Path | None = None) -> Path:
    """The local folder holding the model ``name_or_path`` names, downloaded and verified when needed.

    Args:
        name_or_path, cache_dir, local_files_only, token: as for :meth:`np_draw.NPDraw.from_pretrained`.
        revision: a branch, tag or commit of the Hub repo. For a manifest name, None means the manifest's pinned
            commit, the only one whose files the manifest can verify; another revision is downloaded unverified.
        force_download: download again even when the cache has the files (bundled files are used as they are).
        manifest: the manifest file; None for :func:`manifest_path`.
    Returns:
        The folder; for downloads, a snapshot folder of the Hugging Face cache.
    Raises:
        UnknownModelError: ``name_or_path`` is none of the three kinds (the message lists the known names), or
        a repo id the Hub's rules for names refuse.
        InvalidInputError: ``revision`` contradicts it, or ``local_files_only`` and ``force_download`` are both
        True. InvalidTypeError: an argument of the wrong type.
        WeightsUnavailableError: the weights are not published yet, or neither cached nor downloadable (a Hub that
        refused them is quoted). UnwritablePathError: the Hugging Face cache cannot be written.
        CorruptWeightsError: a file does not match the manifest.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InvalidTypeError(f"name_or_path must be a str or a path, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    if not name.strip():
        raise InvalidInputError(f"name_or_path must name a model folder, a pretrained name or a Hub repo, got {name!r}")
    for key, value, types, what in (("revision", revision, str, "a str (a branch, tag or commit)"),
                                    ("cache_dir", cache_dir, (str, os.PathLike), "a path"),
                                    ("token", token, (str, bool), "a str or a bool")):
        if value is not None and not isinstance(value, types):
            raise InvalidTypeError(f"{key} must be {what} or None, got {type(value).__name__}")
    if revision is not None and (problem := _revision_problem(revision)):
        raise InvalidInputError(f"revision must be a branch, tag or commit of a Hub repo, got {revision!r}: {problem}")
    check_flags(local_files_only=local_files_only, force_download=force_download)
    if local_files_only and force_download:
        # huggingface_hub refuses the pair with a ValueError, which reached the user as a download that failed
        raise InvalidInputError("force_download=True asks to download the files again and local_files_only=True "
                                "forbids any download: pass one of them, not both")
    try:
        path = Path(name).expanduser()
    except RuntimeError as error:  # "~someone" with no such user
        raise UnknownModelError(f"{name!r} is not a model folder: {error}") from error
    manifest = Path(manifest) if manifest is not None else manifest_path()
    models = read_manifest(manifest)
    # A bare pretrained name ("mnist") means the pretrained model even where a folder has that name (a data folder
    # called mnist/ is common); a Path, or a string written as a path ("./mnist"), always means a folder.
    explicit = isinstance(name_or_path, os.PathLike) or name.startswith((".", "/", "~"))
    if path.is_dir() and (explicit or name not in models):
        if revision is not None:
            raise InvalidInputError(f"revision={revision!r} was given with the local folder {str(path)!r}; a revision "
                                    f"selects a commit of a Hub repo")
        return path
    hint = f"np-draw download {name}" + (f" --revision {revision}" if revision else "")
    expected: Mapping[str, Mapping[str, Any]] = {}
    if name in models and not explicit:
        if path.is_dir():
            logger.warning("loading the pretrained model %r, not the folder %s%s: pass './%s' or a Path to load the "
                           "folder", name, path.resolve(),
                           " (a model folder)" if (path / CONFIG_NAME).is_file() else "", name)
        entry = models[name]
        repo_id = entry["repo_id"]
        pinned = revision is None or revision == entry["revision"]
        if pinned and not entry["files"]:
            raise WeightsUnavailableError(
                f"the pretrained weights {name!r} are not available yet: no checkpoint of them has been published for "
                f"this version of np-draw. Train one (`python scripts/train_pretrained.py --name {name} --data DATA "
                f"--out FOLDER` in the np-draw repository, or NPDraw(NPDrawConfig.preset({name!r})).fit(images) then "
                f".save_pretrained(FOLDER)) and load its folder; or, if a checkpoint has been uploaded since, load it "
                f"from the Hub repo {repo_id} with revision='main'")
        if pinned and entry["bundled"]:
            bundle = manifest.parent / name
            if not bundle.is_dir() and manifest.resolve() != PACKAGE_MANIFEST.resolve():
                raise WeightsUnavailableError(
                    f"the manifest {manifest} marks {name!r} as bundled, and bundled files are read from the folder "
                    f"beside it, {bundle}, which does not exist: copy the package's {PACKAGE_MANIFEST.parent / name} "
                    f"there, or load {name!r} with the package's own manifest (unset {MANIFEST_ENV})")
            # Every recorded file, the card too: its licence terms are read and go with the weights.
            for filename, record in entry["files"].items():
                if problem := file_problem(bundle / filename, record):
                    raise CorruptWeightsError(
                        f"the bundled {filename} of {name!r} ({bundle / filename}) is damaged: {problem}; nothing was "
                        f"loaded. Reinstall np-draw (pip install --force-reinstall np-draw) or load {repo_id} from the "
                        f"Hub with revision='main'")
            if force_download:
                logger.warning("force_download=True: %r is bundled in the package, and its checked copy is loaded as "
                               "it is (nothing is downloaded)", name)
            return bundle
        if pinned:
            revision, expected = entry["revision"], entry["files"]
        else:
            logger.warning("loading %r at revision %r, not the one the weights manifest pins: its files are not "
                           "checked against the manifest", name, revision)
    elif not explicit and (hub_name := _HUB_NAME.fullmatch(name)) and not path.exists():
        repo_id, suffix = hub_name["repo_id"], hub_name["revision"]
        if problem := _hub_id_problem(repo_id):
            raise UnknownModelError(f"{name!r} is not a model folder, a known pretrained name "
                                    f"({', '.join(sorted(models))}) or a Hub repo id the Hub accepts: {problem}")
        if suffix and (problem := _revision_problem(suffix)):
            raise InvalidInputError(f"{name!r} asks for revision {suffix!r}, which is no branch, tag or commit of a Hub "
                                    f"repo: {problem}")
        if suffix and revision is not None and revision != suffix:
            raise InvalidInputError(f"{name!r} asks for revision {suffix!r} but revision={revision!r} was also given")
        revision = suffix or revision
        if path.parent.is_dir() and path.parent != Path("."):  # said now: reaching the Hub may take a while
            logger.warning("there is no folder %s (%s is a folder): looking for a Hub repo %r instead", path,
                           path.parent, repo_id)
    else:
        what = "is a file, not a model folder" if path.exists() else "is not a model folder"
        if explicit:
            raise UnknownModelError(f"{name!r} {what}{'' if path.exists() else ': there is nothing at that path'} (a "
                                    "Path, or a name starting with '.', '/' or '~', names a local folder)")
        raise UnknownModelError(f"{name!r} {what}, a known pretrained name ({', '.join(sorted(models))}) or a Hub "
                                f"repo id 'owner/name[@revision]'")
    return _download(repo_id, revision, expected, hint, cache_dir=cache_dir, local_files_only=local_files_only,
                     force_download=force_download, token=token)


def _download(repo_id: str, revision: str | None, expected: Mapping[str, Mapping[str, Any]], hint: str, *,
              cache_dir: str | Path | None, local_files_only: bool, force_download: bool,
              token: str | bool | None) -> Path:
    """The snapshot folder of the loaded files and the card, each checked (see :func:`_verify`) before use; ``hint``
    is the command that downloads them."""
    asked = revision or "main"
    # huggingface_hub reads HF_HUB_OFFLINE once, when imported; set later (os.environ in a notebook), it would still
    # try the Hub, retrying for half a minute before it falls back to the cache.
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    if offline and force_download:  # huggingface_hub would blame local_files_only=True, which was not given
        raise WeightsUnavailableError(f"cannot download {repo_id} again (force_download=True): HF_HUB_OFFLINE is "
                                      "set; unset it, or load from the cache without force_download")
    local_files_only = local_files_only or offline
    # The card is fetched only with weights just downloaded (the Hub is there): a load from a cache that lacks it
    # makes no request, which huggingface_hub would retry for half a minute with the Hub out of reach.
    fetch_card = not local_files_only and (force_download or not all(
        isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision), str)
        for filename in LOADED_FILES))
    cache = cache_dir or constants.HF_HUB_CACHE
    for filename in LOADED_FILES:
        where = f"{filename} of {repo_id} at revision {asked}"
        try:
            path = Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                        local_files_only=local_files_only, force_download=force_download,
                                        token=token, library_name=LIBRARY_NAME))
        except LocalEntryNotFoundError as error:  # caught before EntryNotFoundError, which it is too
            # huggingface_hub says "not cached" also when the Hub answered, refusing (403, 5xx): say its answer
            answer = None if local_files_only else _hub_answer(error.__cause__)
            if answer is not None:
                raise WeightsUnavailableError(f"could not download {where}: {answer}") from error
            reason = ("HF_HUB_OFFLINE is set" if offline else "local_files_only=True was given" if local_files_only
                      else f"the Hub at {constants.ENDPOINT} could not be reached")
            raise WeightsUnavailableError(
                f"{where} is not in the Hugging Face cache ({cache}) and {reason}. To get the weights: run `{hint}` on "
                f"a machine with internet access and copy its cache here (point HF_HUB_CACHE or cache_dir at it); or "
                f"set HF_ENDPOINT to a Hub mirror you can reach; or pass a local folder holding {CONFIG_NAME} and "
                f"{WEIGHTS_NAME}") from error
        except GatedRepoError as error:  # caught before RepositoryNotFoundError, which it is too
            raise WeightsUnavailableError(
                f"the Hub repo {repo_id!r} is gated: its files go only to accounts that accepted its conditions. "
                f"Accept them on its page ({constants.ENDPOINT}/{repo_id}), then pass a token of that account "
                f"(token=, --token or HF_TOKEN)") from error
        except RepositoryNotFoundError as error:
            raise WeightsUnavailableError(
                f"there is no local folder {repo_id!r}, and the Hub at {constants.ENDPOINT} has no model repo "
                f"{repo_id!r}, or it is private and no token that can read it was sent: check the name, or pass a "
                f"token with access to it (token=, --token or HF_TOKEN)") from error
        except RevisionNotFoundError as error:
            raise WeightsUnavailableError(f"the Hub repo {repo_id!r} has no revision {asked!r}") from error
        except EntryNotFoundError as error:
            raise WeightsUnavailableError(f"the Hub repo {repo_id!r} has no {filename} at revision {asked!r}; an "
                                          f"NP-DRAW model repo holds {CONFIG_NAME} and {WEIGHTS_NAME}") from error
        except TRANSPORT_ERRORS as error:  # other HTTP errors, a download cut short or stalled, a full disk
            # A cache folder the process may not write: no permission, a read-only file system
            if not isinstance(error, HfHubHTTPError) and getattr(error, "errno", None) in (errno.EACCES, errno.EPERM,
                                                                                          errno.EROFS):
                raise UnwritablePathError(
                    f"cannot download {where} into the Hugging Face cache {cache}: {error}. Point HF_HUB_CACHE (or "
                    f"cache_dir=, --cache-dir) at a folder you can write") from error
            raise WeightsUnavailableError(f"could not download {where}: "
                                          f"{_hub_answer(error) or first_line(error)}") from error
        except ValueError as error:
            if not force_download:
                raise
            # huggingface_hub's message here is "Force download failed due to the above error": give the error.
            raise WeightsUnavailableError(f"could not download {where} again (force_download=True): "
                                          f"{_hub_answer(error.__cause__) or error.__cause__ or error}") from error
        # The first file fixes the commit, so the others come from the same snapshot even if the branch moves.
        revision = path.parent.name
        _verify(path, where, expected.get(filename), hint, force_download)
    try:  # the card's licence terms go with the weights; weights without a card load all the same
        card = Path(hf_hub_download(repo_id, CARD_NAME, revision=revision, cache_dir=cache_dir,
                                    local_files_only=not fetch_card, force_download=force_download,
                                    token=token, library_name=LIBRARY_NAME))
    except EntryNotFoundError:  # the repo has none, or (LocalEntryNotFoundError) the cache has none
        pass
    except TRANSPORT_ERRORS as error:
        logger.warning("could not download the model card of %s, so its licence terms do not go with the weights: "
                       "%s", repo_id, first_line(error))
    else:
        _verify(card, f"{CARD_NAME} of {repo_id} at revision {asked}", expected.get(CARD_NAME), hint, force_download)
    return path.parent


def first_line(error: BaseException) -> str:
    """The first line of an error's message that says something (huggingface_hub's may start with blank lines)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def _hub_answer(error: BaseException | None) -> str | None:
    """What the Hub answered when it refused a request (its status and message) and what to do, or None when no
    answer came (the request never reached it)."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    if not isinstance(error, HfHubHTTPError) or not isinstance(status, int):
        return None
    message = getattr(error, "server_message", None)
    said = f"the Hub at {constants.ENDPOINT} answered HTTP {status}" + (f" ({message.strip()})" if message else "")
    if status in (401, 403):
        return f"{said}: pass a token that can read the repo (token=, --token or HF_TOKEN)"
    if status == 429 or status >= 500:
        return f"{said}: try again later"
    # Not an answer the Hub gives to a download (its refusals name the repo, revision or file that is missing)
    return f"{said}: check that HF_ENDPOINT ({constants.ENDPOINT}) is the Hub or a mirror of it"


def _verify(path: Path, where: str, record: Mapping[str, Any] | None, hint: str, force_download: bool) -> None:
    """CorruptWeightsError when a downloaded file differs from its manifest ``record`` or, without one, from the
    sha256 the cache names it by (the Hub's ETag of a large, LFS, file): damaged on the way or in the cache."""
    what = "does not match the weights manifest"
    if record is None:
        digest = Path(os.path.realpath(path)).name
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            return
        record, what = {"sha256": digest, "size": path.stat().st_size}, "is damaged"
    if problem := file_problem(path, record):
        # The bad copy stays in the cache, where its blob may be another revision's too: only a download asked for
        # again replaces it.
        again = (f"It was downloaded again (force_download=True) and still differs: the server ({constants.ENDPOINT}) "
                 "serves damaged files" if force_download else
                 f"Load it again with force_download=True (`{hint} --force-download`) to replace the cached copy; if "
                 f"it happens again, the server ({constants.ENDPOINT}) serves damaged files")
        raise CorruptWeightsError(f"the downloaded {where} {what}: {problem}; nothing was loaded. {again}")
