"""The ``np-draw`` command line.

    np-draw sample mnist -n 64 --seed 0 -o grid.png        # draw images from a model, save them as a grid
    np-draw reconstruct mnist digits.npz -o recon.png      # images beside their reconstructions
    np-draw parse mnist digit.png -o parse.png --json z.json   # images beside their heuristic parse canvases
    np-draw fit images/ -o my-model --from mnist --epochs 5    # train or fine-tune, checkpointed, resumable
    np-draw eval mnist --data ../shared/data --limit 1000  # NLL bound, FID, parse and reconstruction PSNR
    np-draw info mnist                                     # config, parameters, metrics, files and their source
    np-draw download mnist -o mnist-copy                   # a verified model folder, for a machine offline
    np-draw download owner/name                            # fetch and verify a Hub model into the HF cache

Each subcommand is one ``cmd_*`` function, registered in :func:`build_parser`.
A user error (an unknown name, a missing file, a bad option, weights that do not verify) prints one line on stderr
and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import logging
import math
import os
import select
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import torch
from PIL import Image
from safetensors import safe_open

from . import __version__, hub
from .config import PRESETS, NPDrawConfig
from .data import DATA_FILES, DATASETS, data_files, load_dataset
from .demo import MODELS as DEMO_MODELS
from .demo import check_address, serve, url_host
from .errors import (
    CorruptWeightsError,
    InvalidInputError,
    MissingFileError,
    NPDrawError,
    UnwritablePathError,
    check_device,
)
from .features import ARCHITECTURES
from .images import (
    ImageSource,
    check_images,
    from_pil_images,
    image_source,
    is_array_file,
    is_colour,
    load_images,
    npz_images,
    open_image,
    read_folder,
    save_grid,
    save_pairs,
    spread,
)
from .manifest import describe_files, read_manifest
from .model import NPDraw
from .model_files import CARD_NAME, LOADED_FILES, STORED_DTYPES, WEIGHTS_NAME, write_together
from .training import FitConfig

USAGE_ERROR = 2
MODEL_FOLDER_FILES = (*LOADED_FILES, CARD_NAME, "history.json")  # what np-draw fit writes into its --output
INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)
BROKEN_PIPE = 141  # and for one whose output's reader went away (128 + SIGPIPE), as `yes | head` gives
NAME_HELP = "a pretrained name (mnist, omniglot, cifar10, celeba), a model folder, or a Hub repo owner/name[@revision]"
logger = logging.getLogger("np_draw")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit code 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` on one line of stderr and exit with code 2."""
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        """As argparse's, but an unknown argument after a subcommand's name is reported by that subcommand
        (argparse reports it as the top-level parser's, "np-draw: error", where every other error of a subcommand
        names it)."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            argv = list(sys.argv[1:] if args is None else args)
            command = getattr(parsed, "command", None)
            after = command in argv and unknown[0] in argv[argv.index(command) + 1:]
            subcommands = next((action.choices for action in self._actions
                                if isinstance(action, argparse._SubParsersAction)), {})
            (subcommands[command] if after else self).error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed


def device_arg(text: str) -> torch.device:
    """``--device``: a torch device that exists on this machine."""
    try:
        return check_device(text)
    except InvalidInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def checked_value(cast: Callable[[str], Any], accept: Callable[[Any], bool], expected: str) -> Callable[[str], Any]:
    """An argparse ``type``: ``cast(text)`` when it succeeds and ``accept(value)`` is true, else an error that says
    what was ``expected``."""
    def parse(text: str) -> Any:
        try:
            value = cast(text)
            valid = accept(value)
        except ValueError:
            valid = False
        if not valid:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    parse.__doc__ = f"A command-line value that must be {expected}."
    return parse


positive_int = checked_value(int, lambda value: value > 0, "a positive integer")
non_negative_int = checked_value(int, lambda value: value >= 0, "a non-negative integer")
fraction = checked_value(float, lambda value: 0 <= value < 1, "a number in [0, 1)")
fid_count = checked_value(int, lambda value: value >= 2, "an integer of at least 2 (the FID compares covariances)")
positive_number = checked_value(float, lambda value: math.isfinite(value) and value > 0, "a positive finite number")
seed = checked_value(int, lambda value: 0 <= value < 2**63, "an integer in [0, 2**63)")
port = checked_value(int, lambda value: 0 < value < 2**16, "a port number in [1, 65535]")


def host(text: str) -> str:
    """``--host``: a name or address this machine resolves."""
    try:
        socket.getaddrinfo(text, None)
    except (OSError, UnicodeError):
        raise argparse.ArgumentTypeError(f"must be a host name or address that resolves, such as 127.0.0.1 or "
                                         f"0.0.0.0, got {text!r}") from None
    return text


def input_path(text: str) -> Path:
    """A path to read; ``~`` is the home folder (the shell does not expand it in ``--validation=~/x``)."""
    try:
        return Path(text).expanduser()
    except RuntimeError as error:  # "~someone" with no such user
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def _writable(path: str) -> bool:
    """Whether a file can be written into the folder ``path``, or the file ``path`` opened for writing: tried, not
    asked of os.access, which answers yes to root everywhere (a read-only mount, /sys)."""
    try:
        if os.path.isdir(path):
            with tempfile.TemporaryFile(dir=path):
                pass
        else:
            with open(path, "ab"):  # neither truncates nor changes it
                pass
    except OSError:
        return False
    return True


def output_path(text: str) -> Path:
    """``-o``: a file (or a folder to create) whose folder exists and is writable, checked before any work; ``~``
    is the home folder (the shell does not expand it in ``--output=~/x``)."""
    path = input_path(text)
    # os.path's tests, which are False where a folder cannot be searched (Path's raise PermissionError)
    if not os.path.isdir(path.parent):
        raise argparse.ArgumentTypeError(f"the folder {str(path.parent)!r} does not exist")
    # An existing file or folder is written itself, a new one in its folder (which may be read-only while it is not)
    written = path if os.path.exists(path) else path.parent
    if not _writable(str(written)):
        raise argparse.ArgumentTypeError(f"{str(written)!r} is not writable")
    return path


def file_path(text: str) -> Path:
    """An output file: :func:`output_path` that is not a folder."""
    path = output_path(text)
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    return path


def picture_path(text: str) -> Path:
    """``-o`` for a picture: :func:`file_path` with a suffix Pillow writes."""
    path = file_path(text)
    Image.init()
    kind = Image.registered_extensions().get(path.suffix.lower())
    try:  # some formats Pillow registers a writer for write nothing (stubs) or only 1-bit images
        for mode in ("L", "RGB"):  # a grid of grey or of colour images
            Image.new(mode, (1, 1)).save(io.BytesIO(), format=kind)
    except (KeyError, OSError, ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {path.suffix or 'no suffix'} is not a picture format Pillow "
                                         "writes (e.g. .png, .jpg, .webp)") from error
    return path


def _write_output(path: Path, write: Callable[[], Any], option: str = "--output") -> None:
    """Run ``write()``, which writes ``path``, turning a failed write into an error naming ``option``."""
    try:
        write()
    except UnwritablePathError as error:
        raise UnwritablePathError(f"{option}: {error}") from error
    except (OSError, ValueError) as error:  # the file system's, writing JSON or copying files
        raise UnwritablePathError(f"{option}: cannot write {str(path)!r}: {error}") from error


def _check_outputs_apart(outputs: dict[str, Path | None], inputs: Sequence[Any], what: str) -> None:
    """Refuse an output file (``outputs``: option -> path) that is one of the ``inputs`` (what ``what`` names) or
    another output: writing it would replace the images read, or the picture with the JSON, and exit 0."""
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        where = os.path.realpath(path)
        if where in seen:
            raise InvalidInputError(f"{option} and {seen[where]} name the same file, {str(path)!r}: give each its "
                                    "own path")
        seen[where] = option
        for given in filter(None, inputs):  # not None (no --inception), nor "", which names no file
            # A picture already in a folder read (at any depth) is one of its images; a JSON file there is not
            inside = os.path.isdir(given) and Path(where).is_relative_to(os.path.realpath(given)) \
                and Path(where).suffix.lower() in Image.registered_extensions()
            if os.path.isfile(where) and (inside or os.path.isfile(given) and os.path.realpath(given) == where):
                raise InvalidInputError(f"{option}: {str(path)!r} is one of the {what} read, and writing it would "
                                        "replace them: give another path")


def _output_folder_names(folder: Path) -> list[str]:
    """The sorted names in the --output ``folder`` (none when it does not exist yet), an error when it is a file.
    Hidden names (a .gitkeep, macOS's .DS_Store, a .git folder) are left out: no command writes one, so none is
    replaced."""
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"--output: {str(folder)!r} is a file, not a folder")
    return sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith(".")) if folder.is_dir() else []


def _check_crop(args: argparse.Namespace, paths: Sequence[Any], option: str) -> None:
    """--crop cuts image files, not the .npz files among ``paths`` (what ``option`` names): an error naming both.
    Image files read whole for a model fitted on their centres (``np-draw fit --crop``) get a warning."""
    arrays = [path for path in paths if is_array_file(path)]
    if args.crop is not None and arrays:
        raise InvalidInputError(f"--crop applies to image files, and {option} names an array file, "
                                f"{str(arrays[0])!r}: crop its images before saving them, or leave --crop out")
    if len(arrays) < len(paths) and args.crop is None and args.trained_crop is not None:
        logger.warning("%s was fitted on each image file's %d px centre (its card records --crop %d), and these "
                       "files are read whole: pass --crop %d to frame them as its training images were", args.name,
                       args.trained_crop, args.trained_crop, args.trained_crop)


def _load_checked(path: str | Path, config: NPDrawConfig, crop: int | None,
                  limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """:func:`load_images` of ``path`` at the model's size, checked: (N, C, H, W) float in [0, 1], and labels."""
    images, labels = load_images(path, channels=config.channels, size=config.image_size, crop=crop, limit=limit)
    return check_images(images, channels=config.channels, size=config.image_size, name=str(path)), labels


def _read_images(args: argparse.Namespace, model: NPDraw) -> tuple[torch.Tensor, list[str]]:
    """Every image the IMAGES arguments name (image files cut to their --crop px centre, when given), at the
    model's size: (N, C, H, W) float in [0, 1], and their labels."""
    paths, crop, cfg = args.images, args.crop, model.config
    _check_crop(args, paths, "IMAGES")
    batches, labels, files = [], [], []

    def add_files() -> None:
        """The image files named one after another, as one group: one log line per kind of conversion. Each is
        decoded as it is resized, so that one image at a time is held at its own size."""
        if files:
            group = from_pil_images(((file, open_image(file, crop)) for file in files), channels=cfg.channels,
                                    size=cfg.image_size)
            batches.append(check_images(group, channels=cfg.channels, size=cfg.image_size, name=files[0]))
            labels.extend(files)
            files.clear()

    for path in paths:
        if Path(path).is_file() and not is_array_file(path):
            files.append(str(path))
            continue
        add_files()
        images, names = _load_checked(path, cfg, crop)
        batches.append(images)
        labels += names
    add_files()
    return torch.cat(batches), labels


def infer_preset(data: Path, crop: int | None = None) -> tuple[str, str]:
    """The preset that fits the images of DATA (a folder or an .npz file), and what was seen: colour images of
    64 px or more are faces-like (celeba, 64x64 RGB), smaller colour ones cifar10 (32x32 RGB), grey ones mnist
    (28x28 grey). Reads the first 16 image files of a folder (their ``crop`` px centre, when given), or the shape
    of an .npz file's array."""
    if is_array_file(data):
        shape = npz_images(data).shape  # a damaged file, or one of objects, is an error naming it
        if len(shape) not in (3, 4):
            raise InvalidInputError(f"DATA {str(data)!r}: its 'images' array has shape {tuple(shape)}, and a "
                                    "preset is chosen from images of shape (N, H, W), (N, C, H, W) or (N, H, W, C): "
                                    "save them so, or give --preset")
        channels_first = len(shape) == 4 and shape[1] in (1, 3)
        colour = len(shape) == 4 and (shape[1] if channels_first else shape[3]) == 3
        side = min(shape[2:] if channels_first else shape[1:3])
    else:
        colour, side = False, 10**9
        for _, image in itertools.islice(read_folder(data, "DATA", crop), 16):  # one decoded image held at a time
            colour, side = colour or is_colour(image), min(side, *image.size)
    preset = ("celeba" if side >= 64 else "cifar10") if colour else "mnist"
    return preset, f"{'colour' if colour else 'grey'} images, {side} px or more a side"


def _resolved(name: str, device: torch.device | None, token: str | None) -> tuple[Path, NPDraw]:
    """The folder ``name`` resolves to (downloaded and checked once) and the model loaded from it."""
    folder = hub.resolve_pretrained(name, token=token)
    return folder, NPDraw.from_pretrained(folder, device=device)


def _load_model(args: argparse.Namespace) -> NPDraw:
    """The model NAME names; ``args.trained_crop`` is the --crop its card records it was fitted with, if any."""
    folder, model = _resolved(args.name, args.device, args.token)
    crop = hub.card_facts(folder).get("training", {}).get("crop")
    args.trained_crop = crop if isinstance(crop, int) else None
    return model


# --- commands --------------------------------------------------------------------------------------------------
def cmd_sample(args: argparse.Namespace) -> int:
    """Sample ``args.num_images`` images from the model ``args.name`` and save them as one grid picture."""
    model = _load_model(args)
    out = model.sample(args.num_images, torch.Generator().manual_seed(args.seed), batch_size=args.batch_size,
                       temperature=args.temperature, progress=not args.quiet, sample_pixels=args.sample_pixels)
    _write_output(args.output, lambda: save_grid(out.images, args.output, args.nrow))
    print(args.output)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """Save each image beside its reconstruction decode(encode(image)) by the model ``args.name``."""
    _check_outputs_apart({"--output": args.output}, args.images, "IMAGES")
    model = _load_model(args)
    images, _ = _read_images(args, model)
    reconstructions = model.reconstruct(images, batch_size=args.batch_size)
    _write_output(args.output, lambda: save_pairs(images, reconstructions, args.output, args.pairs_per_row))
    print(args.output)
    return 0


def cmd_parse(args: argparse.Namespace) -> int:
    """Save each image beside its heuristic parse canvas (the model's part bank), and optionally the latents."""
    _check_outputs_apart({"--output": args.output, "--json": args.json}, args.images, "IMAGES")
    model = _load_model(args)
    images, labels = _read_images(args, model)
    latents = model.parse(images)
    _write_output(args.output, lambda: save_pairs(images, latents.canvas, args.output, args.pairs_per_row))
    if args.json is not None:
        records = [{"source": label, "ids": ids, "locs": locs, "present": [int(p) for p in present]}
                   for label, ids, locs, present in zip(labels, latents.ids.tolist(), latents.locs.tolist(),
                                                        latents.present.tolist())]
        document = {"model": args.name, "num_steps": model.config.num_steps, "grid_size": model.config.grid_size,
                    "num_parts": model.config.num_parts, "crop": args.crop, "images": records}
        _write_output(args.json, lambda: args.json.write_text(json.dumps(document) + "\n"), "--json")
        print(args.json)
    print(args.output)
    return 0


def _fit_config(args: argparse.Namespace) -> FitConfig:
    """The FitConfig the fit options ask for."""
    options = ("epochs", "steps", "prior_epochs", "prior_steps", "eval_every", "max_passes", "patience", "batch_size",
               "seed", "val_fraction", "checkpoint_every")
    overrides = {key: getattr(args, key) for key in options if getattr(args, key) is not None}
    if args.from_name is None:
        if args.fit_bank or args.keep_prior:
            raise InvalidInputError("--fit-bank and --keep-prior are for fine-tuning (--from NAME); training from "
                                    "scratch fits the bank and the prior")
        config = FitConfig().replace(**overrides)
    else:
        if args.keep_prior and args.fit_bank:
            raise InvalidInputError("--fit-bank with --keep-prior: a refitted bank changes what every part id means, "
                                    "so the prior must be trained on the new parses: drop one of them")
        if args.keep_prior and (args.prior_steps or args.prior_epochs):
            raise InvalidInputError("--keep-prior leaves the prior as it is: drop --prior-steps / --prior-epochs, or "
                                    "--keep-prior to train it")
        # Fine-tuning keeps the pretrained bank (refitting it changes what every latent id means) unless --fit-bank.
        config = FitConfig.finetune(fit_bank=args.fit_bank, fit_prior=not args.keep_prior, **overrides)
    # --eval-every and --max-passes shape budgets in steps only: with every stage in epochs they changed nothing and
    # said nothing (a run given --epochs 5 --eval-every 10 validates once an epoch all the same)
    unused = [f"--{key.replace('_', '-')} {getattr(args, key)}" for key in ("eval_every", "max_passes")
              if getattr(args, key) is not None]
    if unused and config.steps is None and not (config.fit_prior and config.prior_steps is not None):
        raise InvalidInputError(f"{' and '.join(unused)}: no effect with every stage measured in epochs (--epochs, "
                                "--prior-epochs or --keep-prior), as they shape budgets in steps: give --steps or "
                                f"--prior-steps, or drop {' and '.join(option.split()[0] for option in unused)}")
    return config


def cmd_fit(args: argparse.Namespace) -> int:
    """Train a model (a preset from scratch, or ``--from`` a pretrained one) on DATA and save it to OUTPUT."""
    if args.from_name is not None and args.preset is not None:
        raise InvalidInputError("give --from NAME (fine-tune) or --preset NAME (train from scratch), not both")
    # An earlier run's folder (its checkpoints, or the model it saved) is written again, as documented; any other
    # folder with files in it is not, where the model card and config.json would replace a project's own README.md
    # and config.json, or the images of DATA itself would be mixed with the model's files.
    present = _output_folder_names(args.output)
    if present and not ((args.output / "checkpoints").is_dir() or (args.output / WEIGHTS_NAME).is_file()):
        raise InvalidInputError(f"--output: {str(args.output)!r} holds files that are not an np-draw model or run "
                                f"({', '.join(present[:3])}{', ...' if len(present) > 3 else ''}), and fit writes "
                                f"{', '.join(MODEL_FOLDER_FILES)} and checkpoints/ there, replacing files of the same "
                                "name: give a new or empty folder, or one an earlier np-draw fit wrote")
    data, held_out = args.data, args.validation
    for name, path in (("DATA", data), ("--validation", held_out)):
        if path is None:
            continue
        expected = f"{name} must be a folder of images or an .npz file with an 'images' array, got {str(path)!r}"
        if not path.exists():
            raise MissingFileError(f"{expected}: nothing there")
        if not (path.is_dir() or is_array_file(path)):
            raise InvalidInputError(expected)
        _check_crop(args, [path] if path.is_file() else [], name)  # a file here is an .npz: no warning, no trained_crop
    if held_out is not None and args.val_fraction is not None:
        raise InvalidInputError("give --validation (held-out images) or --val-fraction (a share of DATA), not both")
    config = _fit_config(args)
    model_preset = args.preset
    if args.preset is None and args.from_name is None:
        model_preset, seen = infer_preset(data, args.crop)
        logger.info("no --preset or --from: DATA holds %s, so the %s preset (%s) is trained; give --preset to "
                    "choose another", seen, model_preset, _kind(PRESETS[model_preset]))
    device = args.device or torch.device("cpu")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))  # under torchrun: one GPU per process
    if args.from_name is not None:
        model = NPDraw.from_pretrained(args.from_name, device=device, token=args.token)
    else:
        torch.manual_seed(config.seed)  # the initial weights, so that a seed fixes the whole run
        model = NPDraw(NPDrawConfig.preset(model_preset)).to(device)
    cfg = model.config

    def source(path: Path, option: str) -> ImageSource:
        """A folder is streamed (read a batch at a time); an .npz file is read whole (--crop was refused for it).
        Errors name the ``option`` (an empty --validation folder was only a path)."""
        held = path if path.is_dir() else load_images(path, channels=cfg.channels, size=cfg.image_size)[0]
        return image_source(held, channels=cfg.channels, size=cfg.image_size, name=option, crop=args.crop)

    images, validation = source(data, "DATA"), None if held_out is None else source(held_out, "--validation")
    logger.info("fitting on %d images from %s; checkpoints in %s", len(images), data, args.output / "checkpoints")
    history = model.fit(images, config, output_dir=args.output, resume=args.resume, progress=not args.quiet,
                        validation=validation)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return 0  # under torchrun every process holds the same weights; the first one writes them
    start = f"fine-tuned from {args.from_name}" if args.from_name else f"trained from the preset {model_preset}"
    framing = "" if args.crop is None else f", each cut to its {args.crop}x{args.crop} px centre (--crop)"
    measured = {"held-out bound, nats (one sample), at the start": history.val_bound_start,
                "held-out bound, nats (one sample), kept": history.val_bound_kept}
    card = {"dataset": f"{len(images)} images from {data.resolve().name}{framing}", "notes": f"{start} with `np-draw fit`.",
            "metrics": {name: round(value, 3) for name, value in measured.items() if value is not None},
            "training": {"fit_config": asdict(config),
                         # what ran, whatever the defaults were (a budget of None in fit_config means FitConfig's)
                         "trained": {"prior_rounds": len(history.prior_train),
                                     "prior_steps": _steps_run(len(history.prior_train), history.prior_steps, config),
                                     "rounds": len(history.train),
                                     "steps": _steps_run(len(history.train), history.steps, config)},
                         "from": args.from_name, "data": str(data), "crop": args.crop,
                         "data_fingerprint": images.fingerprint(not args.quiet),
                         "validation": None if held_out is None else str(held_out)}}
    model.save_pretrained(args.output, card=card)
    # Renamed into place, as the model's files are: a link planted at that name is replaced, not written through
    record = json.dumps(asdict(history), indent=1) + "\n"
    write_together({args.output / "history.json": lambda staged: Path(staged).write_text(record)})
    print(args.output)
    return 0


def _steps_run(rounds: int, budget: int | None, config: FitConfig) -> int | None:
    """The optimizer steps a stage measured in steps ran: its budget, or fewer when patience stopped it after
    ``rounds`` rounds of ``eval_every`` steps; None for a stage measured in epochs."""
    return None if budget is None else min(budget, rounds * config.eval_every)


def _kind(config: NPDrawConfig) -> str:
    """The images a config takes, in words: "28x28 grey", "64x64 RGB"."""
    return f"{config.image_size}x{config.image_size} {'RGB' if config.channels == 3 else 'grey'}"


def _evaluation_images(args: argparse.Namespace, model: NPDraw) -> tuple[torch.Tensor, str]:
    """The images ``np-draw eval`` scores, and what they are: a split of a data set in the shared-data layout when
    --dataset is given (or NAME is a data set whose file DATA holds), else the images DATA names."""
    split = args.split or "test"
    named = args.dataset or (args.name if args.name in DATASETS else None)
    if named is not None and split not in DATA_FILES[named]:
        raise InvalidInputError(f"--split: the {named} data set has no {split!r} split; its splits are "
                                f"{', '.join(DATA_FILES[named])}")
    # The data sets whose split DATA holds in the shared-data layout
    held = [name for name in DATASETS if split in DATA_FILES[name]
            and all(f.is_file() for f in data_files(name, args.data, split))]
    dataset = args.dataset or (args.name if args.name in held else None)
    if dataset is not None:
        if args.crop is not None:
            raise InvalidInputError(f"--crop applies to image files, and --data holds the {dataset} data set, read "
                                    "as its own protocol frames it")
        # Before decoding the split; the model would refuse its images anyway, in words that name no option
        given, taken = _kind(PRESETS[dataset]), _kind(model.config)  # channels are 1 or 3: equal kinds, equal shapes
        if given != taken:
            fitting = [name for name in DATASETS if _kind(PRESETS[name]) == taken]
            instead = f"pass --dataset {' or '.join(fitting)}, or give" if fitting else "give"
            raise InvalidInputError(f"--dataset {dataset}: its images are {given}, and the model {args.name} "
                                    f"takes {taken} ones (a data set's images are scored as they are, not "
                                    f"resized): {instead} --data image files, which are resized")
        images = spread(load_dataset(dataset, args.data, split), args.limit).float() / 255
        source = f"{dataset} {split}"
    else:
        if held:  # not a folder of image files: its .npz files would each be skipped as unreadable images
            # Only the data sets whose images the model takes are suggested (a grey model was offered cifar10)
            fitting = [name for name in held if _kind(PRESETS[name]) == _kind(model.config)]
            what = (f"pass --dataset {' or '.join(fitting)} to score it" if fitting else
                    f"none of them is of the {_kind(model.config)} images the model {args.name} takes: give --data "
                    "image files, which are resized")
            raise InvalidInputError(f"--data {str(args.data)!r} holds the {split} split of {', '.join(held)} in "
                                    f"the shared-data layout: {what}")
        if args.split is not None:
            raise InvalidInputError(f"--split names a split of a data set, got {args.split!r}, and --data "
                                    f"{str(args.data)!r} holds no such split of {', '.join(DATASETS)} in the "
                                    "shared-data layout: pass --dataset NAME, or leave --split out to score the "
                                    "images --data names")
        _check_crop(args, [args.data], "--data")
        images, _ = _load_checked(args.data, model.config, args.crop, args.limit)
        source = str(args.data) if args.crop is None else f"{args.data} (each file's {args.crop} px centre)"
    if len(images) < 2:  # else the FID's message, which names no option
        raise InvalidInputError(f"--data: the FID needs at least 2 images, and {source} holds {len(images)}")
    if args.limit is not None and len(images) < args.limit:
        if dataset is None and args.data.is_dir():  # --limit files picked, and unreadable ones among them skipped
            logger.warning("--limit %d: %d readable images read from %s (it holds fewer image files, or some of "
                           "those picked were skipped, as said above), so %d are scored", args.limit, len(images),
                           source, len(images))
        else:
            logger.warning("--limit %d: %s holds %d readable images, so all %d are scored", args.limit, source,
                           len(images), len(images))
    return images, f"{source}, {len(images):,} images"


def cmd_eval(args: argparse.Namespace) -> int:
    """Print the evaluation table of the model ``args.name`` on the images of ``args.data``."""
    from .inception import inception_v3
    from .metrics import evaluate

    if args.inception is not None and args.features is not None:
        raise InvalidInputError(f"give --features (got {args.features!r}) or --inception (got "
                                f"{str(args.inception)!r}), not both: the FID uses one feature network")
    _check_outputs_apart({"--json": args.json}, [args.data, args.inception], "--data / --inception files")
    features = args.features
    if args.inception is not None:  # read first: a wrong file is refused before the model and images are loaded
        try:
            features = inception_v3(args.inception, device=args.device or "cpu")
        except (MissingFileError, CorruptWeightsError) as error:
            raise type(error)(f"--inception: {error}") from error
    model = _load_model(args)
    images, source = _evaluation_images(args, model)
    results = evaluate(model, images, num_samples=args.num_samples, features=features,
                       num_generated=args.num_generated, seed=args.seed, binarised_fid=args.binarised_fid,
                       progress=not args.quiet)
    fid_key = next(key for key in results if key.startswith("FID"))
    samples = f"{args.num_samples} importance sample{'s' if args.num_samples > 1 else ''}"
    binarised = ", binarised, against the binarised images" if args.binarised_fid else ""
    rows = [(f"NLL bound, nats ({samples})", f"{results['nll_nats']:.3f}"),
            ("NLL bound, bits/dim", f"{results['nll_bits_per_dim']:.4f}"),
            (f"{fid_key} ({args.num_generated or len(images):,} samples{binarised})", f"{results[fid_key]:.3f}"),
            ("parse PSNR, dB", f"{results['parse_psnr_db']:.2f}"),
            ("reconstruction PSNR, dB", f"{results['reconstruction_psnr_db']:.2f}")]
    print(f"{args.name} on {source}\n\n| metric | value |\n|---|---|")
    print("\n".join(f"| {name} | {value} |" for name, value in rows))
    if args.json:
        document = {"model": args.name, "data": source, "crop": args.crop, "num_samples": args.num_samples,
                    "num_generated": args.num_generated or len(images), "seed": args.seed,
                    "binarised_fid": args.binarised_fid, **results}
        _write_output(args.json, lambda: args.json.write_text(json.dumps(document, indent=2) + "\n"), "--json")
    return 0


def model_info(name: str, device: torch.device | None = None, token: str | None = None) -> dict[str, Any]:
    """What ``np-draw info`` prints: the config, parameter counts, the manifest's metrics and the files.

    Args:
        name: a pretrained name, a model folder or a Hub repo id, as for ``NPDraw.from_pretrained``.
        device: where to load the model (to count its parameters).
        token: a Hub token for a private or gated repo; None uses ``HF_TOKEN`` or the saved login.
    Returns:
        A JSON-serialisable dict: ``name``, ``source`` (where the files came from), ``folder``, ``files``
        ({file: {"sha256", "size"}}), ``dtype`` (of the stored weights, e.g. "float32"), ``config``,
        ``parameters`` ({module: {"parameters", "buffers"}} and ``total``), ``metrics`` / ``paper_metrics`` /
        ``dataset`` when the manifest has them, else ``dataset`` and ``notes`` from the model card when it says them.
    """
    folder, model = _resolved(name, device, token)  # float32: nothing is computed in it
    models = read_manifest()
    local = folder == Path(name).expanduser()  # resolve_pretrained returns a folder it was given as it is
    if local:
        source = "a local folder"
    elif name in models:
        entry = models[name]
        source = ("bundled in the package (np_draw/weights), checked against the weights manifest" if entry["bundled"]
                  else f"the Hub repo {entry['repo_id']} at commit {entry['revision']}, checked against the weights "
                       "manifest")
    else:
        source = (f"the Hub repo {name} (not in the weights manifest: its weights are checked against the sha256 the "
                  "Hub gives for them)")
    with safe_open(folder / WEIGHTS_NAME, framework="pt") as weights:  # checked by the load
        stored = weights.get_slice("bank.parts").get_dtype()  # the dtype from_pretrained(dtype="auto") would take
    stored = str(STORED_DTYPES[stored]).removeprefix("torch.") if stored in STORED_DTYPES else stored
    counts = {child: {"parameters": sum(p.numel() for p in module.parameters()),
                      "buffers": sum(b.numel() for b in module.buffers())}
              for child, module in model.named_children()}
    counts["total"] = {kind: sum(c[kind] for c in counts.values()) for kind in ("parameters", "buffers")}
    info = {"name": name, "source": source, "folder": str(folder), "files": describe_files(folder),
            "dtype": stored, "config": model.config.to_dict(), "parameters": counts}
    if name in models and not local:
        info.update({key: models[name][key] for key in ("dataset", "metrics", "paper_metrics") if key in models[name]})
    else:  # a folder or a Hub repo: its card says what it was trained on (and, for a fine-tune, from which model)
        info.update(hub.card_facts(folder))
    return info


def cmd_info(args: argparse.Namespace) -> int:
    """Print what the model ``args.name`` is (config, parameters, metrics, files), as text or JSON."""
    info = model_info(args.name, args.device, args.token)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    lines = [f"model: {info['name']}", f"source: {info['source']}", f"folder: {info['folder']}",
             f"stored as: {info['dtype']}", "files:"]
    lines += [f"  {file}: {record['size']:,} bytes, sha256 {record['sha256']}"
              for file, record in info["files"].items()]
    lines.append("parameters (trained / stored buffers such as the part bank):")
    lines += [f"  {module}: {c['parameters']:,} / {c['buffers']:,}" for module, c in info["parameters"].items()]
    lines += [f"{key}: {info[key]}" for key in ("dataset", "notes") if key in info]
    for key in ("metrics", "paper_metrics"):
        if info.get(key):
            lines.append(f"{key.replace('_', ' ')}:")
            lines += [f"  {metric}: {value}" for metric, value in info[key].items()]
    lines.append("config:")
    lines += [f"  {line}" for line in json.dumps(info["config"], indent=2, sort_keys=True).splitlines()]
    print("\n".join(lines))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Download and verify the weights ``args.name`` names, print their folder, and return the exit code 0.

    Run it on a machine with internet access, then copy the Hugging Face cache (``HF_HUB_CACHE``) to an offline one;
    or, with ``--output``, write a model folder that loads anywhere, for every name (bundled ones included).

    Raises:
        ValueError, OSError: the name is unknown, or the weights cannot be had, do not verify or are not an NP-DRAW
        model that loads (nothing is written to ``--output`` then).
    """
    models = read_manifest()
    bundled = args.name in models and models[args.name]["bundled"] and args.revision is None
    if bundled and args.cache_dir is not None and args.output is None:
        raise InvalidInputError(f"{args.name!r} is bundled in the np-draw package and not published on the Hub, so "
                                "there is nothing to put in a Hugging Face cache; pass --output FOLDER for a copy "
                                "of its model folder")
    if args.output is not None and _output_folder_names(args.output):
        raise InvalidInputError(f"--output: {str(args.output)!r} exists and is not empty")
    if args.output is not None and not args.output.exists() and not os.path.isdir(args.output.parent):
        raise MissingFileError(f"--output: cannot write {str(args.output)!r}: the folder {str(args.output.parent)!r} "
                               "does not exist (only the last folder of --output is created)")
    folder = hub.resolve_pretrained(args.name, revision=args.revision, cache_dir=args.cache_dir,
                                    force_download=args.force_download, token=args.token)
    # The sha256 checks say the files arrived whole, not that they are an NP-DRAW model (another library's repo, a
    # config that does not fit its weights): said here, not on the offline machine the files are copied to. The
    # load builds a meta-device skeleton first, so a config asking for absurd sizes allocates nothing.
    NPDraw.from_pretrained(folder)
    if bundled and args.output is None:  # else it looks as if the Hugging Face cache had been filled
        logger.info("%s is bundled in the np-draw package, so nothing was downloaded: its folder is printed; "
                    "--output FOLDER writes a copy of it for another machine", args.name)
    if args.output is not None:
        _write_output(args.output, lambda: _copy_model_files(folder, args.output))
        folder = args.output
    print(folder)
    return 0


def _copy_model_files(folder: Path, output: Path) -> None:
    output.mkdir(exist_ok=True)  # its folder exists (checked): a mistyped parent is not created
    for name in (*LOADED_FILES, CARD_NAME):
        if (folder / name).is_file():
            shutil.copyfile(folder / name, output / name)


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the local web page (np_draw.demo) and serve it until interrupted."""
    try:
        import gradio  # noqa: F401 - only to say how to install it
    except ImportError:
        raise InvalidInputError("np-draw demo needs the demo extra: pip install 'np-draw[demo]' (Gradio)") from None
    check_address(args.host, args.port)  # as serve does, but before the line below claims the address
    print(f"np-draw demo on http://{url_host(args.host)}:{args.port} (Ctrl+C stops it)", flush=True)
    serve(args.name, host=args.host, port=args.port)
    return 0


# --- the parser --------------------------------------------------------------------------------------------------
def _command(commands: argparse._SubParsersAction, name: str, summary: str, description: str, func: Any, *,
             name_help: str | None = NAME_HELP, device: bool = True) -> argparse.ArgumentParser:
    """Add subcommand ``name`` (run by ``func``) with --token, and --device and a model ``name`` where asked."""
    parser = commands.add_parser(name, help=summary, description=description)
    if name_help is not None:
        parser.add_argument("name", help=name_help)
    parser.add_argument("--token",
                        help="a Hugging Face token, for a private or gated Hub repo (default: HF_TOKEN or the saved "
                             "login)")
    if device:
        parser.add_argument("--device", type=device_arg, help="torch device, e.g. cpu, cuda or cuda:1 (default cpu)")
    parser.set_defaults(func=func)
    return parser


def _add_crop_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--crop", type=positive_int, metavar="PX",
                        help="cut each image file to its PX x PX centre before it is resized to the model's size, "
                             "to frame photos as the model's training images were: 148 for 178x218 aligned CelebA "
                             "photos and the celeba model (default: the largest centred square)")


def _add_pairs_arguments(parser: argparse.ArgumentParser, default_output: str) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGES",
                        help="image files, folders of images, or .npz files with an 'images' array")
    _add_crop_argument(parser)
    parser.add_argument("-o", "--output", type=picture_path, default=Path(default_output),
                        help=f"the picture (default {default_output})")
    parser.add_argument("--pairs-per-row", type=positive_int, help="image pairs per row (default: about square)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no log lines (what loading the images changed)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand, in the order --help lists them; each sets ``func``, the ``cmd_*`` function
    that runs it."""
    parser = Parser(prog="np-draw", description="NP-DRAW: sample, train, inspect and manage models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sample = _command(commands, "sample", "sample images from a model and save them as a grid",
                      "Draw images from a pretrained model (or a model folder / Hub repo) and save them as one grid "
                      "picture.", cmd_sample)
    sample.add_argument("-n", "--num-images", type=positive_int, default=64, help="how many images (default 64)")
    sample.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    sample.add_argument("-o", "--output", type=picture_path, default=Path("samples.png"),
                        help="the grid picture (default samples.png)")
    sample.add_argument("--nrow", type=positive_int, help="images per row (default: a square)")
    sample.add_argument("--batch-size", type=positive_int, default=256, help="images drawn at once (default 256)")
    sample.add_argument("--temperature", type=positive_number, default=1.0, help="prior temperature (default 1)")
    sample.add_argument("--sample-pixels", action="store_true",
                        help="draw each pixel from the decoder's likelihood (binary for MNIST and Omniglot) instead of "
                             "showing its mean")
    sample.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    reconstruct = _command(commands, "reconstruct", "save images beside their reconstructions",
                           "Encode each image, decode it again, and save one grid with each original (left) beside "
                           "its reconstruction (right). Image files are centre-cropped and resized to the model's "
                           "size; the images of an .npz file must be at that size.",
                           cmd_reconstruct)
    _add_pairs_arguments(reconstruct, "reconstructions.png")
    reconstruct.add_argument("--batch-size", type=positive_int, default=256, help="images at once (default 256)")

    parse = _command(commands, "parse", "save images beside their heuristic parse canvases",
                     "Parse each image with the model's part bank (the nearest part in every non-empty grid cell) "
                     "and save one grid with each image (left) beside its parse canvas (right).", cmd_parse)
    _add_pairs_arguments(parse, "parse.png")
    parse.add_argument("--json", type=file_path,
                       help="also write the latents (ids, locs, present per step) of every image to this JSON file")

    fit = _command(commands, "fit", "train or fine-tune a model on images",
                   "Train a model on DATA and save it to OUTPUT (config.json, model.safetensors, a model card and "
                   "history.json), with checkpoints in OUTPUT/checkpoints; --resume continues a stopped run "
                   "exactly, or with a larger --epochs extends a finished one. Without --from, a preset is trained "
                   "from scratch (part bank, parse, prior, then encoder and decoder); with --from, a pretrained "
                   "model is fine-tuned with FitConfig.finetune(): its part bank kept, its prior and then its encoder "
                   "and decoder trained for a number of optimizer steps, the best validation round kept. Progress "
                   "goes to stderr.", cmd_fit, name_help=None)
    fit.add_argument("data", metavar="DATA", type=input_path, help="a folder of images, or an .npz file with an 'images' array")
    _add_crop_argument(fit)
    fit.add_argument("-o", "--output", type=output_path, required=True,
                     help="the model folder to write: a new one (created), an empty one, or one an earlier np-draw "
                          "fit wrote (written again; --resume continues it)")
    start = fit.add_argument_group("where to start (one of)")
    start.add_argument("--from", dest="from_name", metavar="NAME", help="fine-tune this pretrained model: " + NAME_HELP)
    start.add_argument("--preset", choices=sorted(PRESETS),
                       help="train this preset from scratch (default: the one that fits DATA: mnist for grey images, "
                            "cifar10 for small colour ones, celeba for colour ones of 64 px or more)")
    fit.add_argument("--fit-bank", action="store_true", help="with --from: refit the part bank (k-means) on DATA")
    fit.add_argument("--keep-prior", action="store_true", help="with --from: leave the prior as it is")
    scratch, tuning = FitConfig(), FitConfig.finetune()  # the defaults --help states
    budget = fit.add_argument_group("how long (default: FitConfig's, in epochs from scratch and in steps with "
                                    "--from; 0 skips the stage)")
    budget.add_argument("--epochs", type=non_negative_int, help="encoder/decoder epochs (FitConfig.epochs)")
    budget.add_argument("--steps", type=non_negative_int,
                        help="encoder/decoder optimizer steps instead of epochs (FitConfig.steps)")
    budget.add_argument("--prior-epochs", type=non_negative_int, help="prior epochs (FitConfig.prior_epochs)")
    budget.add_argument("--prior-steps", type=non_negative_int,
                        help="prior optimizer steps instead of epochs (FitConfig.prior_steps)")
    budget.add_argument("--eval-every", type=positive_int,
                        help=f"optimizer steps per validation round when a stage is measured in steps (default "
                             f"{scratch.eval_every})")
    budget.add_argument("--max-passes", type=positive_number,
                        help=f"cut a budget in steps to this many passes over the training images (default "
                             f"{tuning.max_passes} with --from, none from scratch)")
    budget.add_argument("--patience", type=positive_int,
                        help="stop after this many rounds without a better validation bound, keeping the best "
                             f"(default with --from: {tuning.patience})")
    fit.add_argument("--batch-size", type=positive_int,
                     help=f"encoder/decoder batch size (default {scratch.batch_size} from scratch, "
                          f"{tuning.batch_size} with --from)")
    fit.add_argument("--val-fraction", type=fraction,
                     help=f"share of DATA held out for validation (default {scratch.val_fraction})")
    fit.add_argument("--validation", type=input_path, metavar="HELD_OUT",
                     help="held-out images for validation instead (a folder or an .npz file, as DATA)")
    fit.add_argument("--checkpoint-every", type=non_negative_int,
                     help=f"optimizer steps between checkpoints (also one after every epoch; 0: after epochs "
                          f"only; default {scratch.checkpoint_every})")
    fit.add_argument("--seed", type=seed, help=f"random seed (FitConfig.seed, default {scratch.seed})")
    fit.add_argument("--resume", action="store_true",
                     help="continue from the latest checkpoint in OUTPUT (same DATA and options; --epochs may grow)")
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress bars or epoch lines")

    evaluation = _command(commands, "eval", "measure a model: NLL bound, FID, parse and reconstruction PSNR",
                          "Score a model on test images: the importance-sampled bound on -log p(x) (nats and "
                          "bits/dim), the Frechet distance between its samples and the images in a named feature "
                          "space (FID-cnn-mnist, FID-cnn-cifar10, or Inception-v3 from a local pytorch-fid weights "
                          "file), and the PSNR of parses and reconstructions. Prints a markdown table.", cmd_eval)
    evaluation.add_argument("--data", type=input_path, required=True,
                            help="one path: the shared data folder (with --dataset, or when NAME is a data set), "
                                 "an image file, a folder of images, or an .npz file with an 'images' array")
    _add_crop_argument(evaluation)
    evaluation.add_argument("--dataset", choices=DATASETS,
                            help="read this data set's --split from DATA (default: NAME when it is a data set)")
    evaluation.add_argument("--split", help="the split of --dataset (default test)")
    evaluation.add_argument("--limit", type=fid_count,
                            help="only N images, spread evenly over the split or folder (the i-th at i * total // N: a "
                                 "split sorted by class keeps every class; of a folder, the other files are not read)")
    evaluation.add_argument("--num-samples", type=positive_int, default=50,
                            help="importance samples per image for the NLL bound (default 50, as the paper); the "
                                 "binarisation and the samples are drawn in the images' order from --seed, so the "
                                 "same images in another order (a folder's sorted names, an .npz's rows) score a "
                                 "little differently")
    evaluation.add_argument("--features", choices=sorted(ARCHITECTURES),
                            help="the FID feature network (default: cnn-mnist for grey models, cnn-cifar10 for RGB)")
    evaluation.add_argument("--inception", type=input_path,
                            help="pytorch-fid's Inception-v3 weights file: report the Inception FID instead")
    evaluation.add_argument("--binarised-fid", action="store_true",
                            help="the FID between binarised samples and the binarised images, the paper's protocol for "
                                 "MNIST and Omniglot (grey models; default: the samples' mean pixels against the "
                                 "images as given)")
    evaluation.add_argument("--num-generated", type=fid_count,
                            help="samples compared with the images by the FID (default: as many as images)")
    evaluation.add_argument("--seed", type=seed, default=0, help="seeds binarisation, posterior draws and samples (default 0)")
    evaluation.add_argument("--json", type=file_path, help="also write the figures to this JSON file")
    evaluation.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    info = _command(commands, "info", "show a model's config, parameter counts, metrics and files",
                    "Print a model's config, its parameter counts per module, the weights manifest's metrics when "
                    "it has them, and its files (size, sha256) with where they came from.", cmd_info)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")

    # No --device: the files are fetched, verified and loaded once on the CPU, to check that they make a model.
    download = _command(commands, "download", "download and verify pretrained weights, for use offline later",
                        "Download a model's config.json, model.safetensors and card into the Hugging Face cache "
                        "(a pretrained name's checked against the weights manifest; the four bundled ones are in "
                        "the package already) and print the folder holding them; --output copies them to a folder.",
                        cmd_download,
                        name_help="a pretrained name (mnist, omniglot, cifar10, celeba) or a Hub repo "
                                  "owner/name[@revision]", device=False)
    download.add_argument("--revision", help="a branch, tag or commit (default: the manifest's pinned commit for a "
                                             "pretrained name, main for a repo)")
    download.add_argument("--cache-dir", help="the Hugging Face cache folder (default: HF_HUB_CACHE)")
    download.add_argument("--force-download", action="store_true", help="download again even when cached")
    download.add_argument("-o", "--output", type=input_path,
                          help="also write the verified files into this folder (new or empty), a model folder that "
                               "NPDraw.from_pretrained(FOLDER) loads on any machine; works for bundled names too")

    demo = commands.add_parser("demo", help="a local web page to sample, watch, edit and reconstruct",
                               description="Start a web page (Gradio) on this machine with the bundled models: "
                                           "sample, watch a drawing step by step, edit its parts, reconstruct your "
                                           "own images. Needs pip install 'np-draw[demo]'; works offline.")
    demo.add_argument("name", nargs="?", default="mnist", choices=DEMO_MODELS,
                      help="the model selected first (default mnist)")
    demo.add_argument("--port", type=port, default=7860, help="the port (default 7860)")
    demo.add_argument("--host", type=host, default="127.0.0.1",
                      help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the "
                           "network)")
    demo.set_defaults(func=cmd_demo)
    return parser


def _report(args: argparse.Namespace, error: Exception) -> int:
    """Print ``error`` as the user error of ``args.command`` and return its exit code."""
    # One line, whatever the message holds: scripts grep it, people read it.
    print(f"np-draw {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
    return USAGE_ERROR


def _stdout_closed() -> bool:
    """Whether stdout's reader has gone, so that a BrokenPipeError came from stdout rather than from elsewhere; if
    so, stdout becomes /dev/null, so that Python's flush at exit does not fail again ("Exception ignored ...")."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # no event asked for: an error (no reader left) is reported anyway
        # Linux reports a pipe with no reader as POLLERR; other systems' poll may say POLLHUP
        closed = any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or a stdout that is not a file
        return False
    if closed:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return closed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 2 on a user error, after printing it on one line of stderr; 130 when
        interrupted (Ctrl-C); 141, silently, when stdout's reader went away (a pipe into ``head``).
    """
    args = build_parser().parse_args(argv)
    if not getattr(args, "quiet", False):
        # Epoch lines and warnings from the library, beside tqdm's progress bars on stderr; not a line per HTTP
        # request of huggingface_hub's client (httpx, httpx2 from huggingface_hub 1.0) or of Gradio's health checks.
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        for client in ("httpx", "httpx2"):
            logging.getLogger(client).setLevel(logging.WARNING)
    try:
        code = args.func(args)
        sys.stdout.flush()  # what was printed reaches its reader now, where a reader gone is seen below
        return code
    except BrokenPipeError as error:
        # The reader of stdout stopped early (np-draw info mnist | head): nothing to report, as for any Unix tool
        return BROKEN_PIPE if _stdout_closed() else _report(args, error)
    # NPDrawError covers every deliberate np-draw error; the builtins cover the libraries underneath (Pillow,
    # safetensors, the file system), whose messages name the file or value at fault.
    except (NPDrawError, ValueError, TypeError, OSError) as error:
        return _report(args, error)
    except KeyboardInterrupt:
        hint = "; run the same command with --resume to continue" if args.command == "fit" else ""
        print(f"np-draw {args.command}: interrupted{hint}", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
