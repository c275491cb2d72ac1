"""The catalogue of bad inputs: what np-draw raises for each, at the Python API and at the command line.

``tests/test_errors.py`` runs every case; ``python -m tests.error_catalogue`` writes ``docs/errors.md`` from the
same list, so the page cannot drift from what the code does (a test compares them).

A case's ``message`` is a part of the error's message that the test requires; it is what the page shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from np_draw import Latents, NPDraw, NPDrawConfig, SampleOutput
from np_draw.bank import PartBank
from np_draw.editing import interpolate, paste_canvas, paste_latents
from np_draw.errors import (
    ConfigMismatchError,
    CorruptWeightsError,
    InvalidInputError,
    InvalidTypeError,
    MissingFileError,
    TrainingDivergedError,
    UnknownModelError,
    UnwritablePathError,
)
from np_draw.hub import resolve_pretrained
from np_draw.images import load_images
from np_draw.manifest import sha256_file
from np_draw.metrics import fid, nll, psnr
from np_draw.model_files import CONFIG_NAME, WEIGHTS_NAME
from np_draw.pictures import comparison_image, drawing_frames, save_drawing_gif
from np_draw.training import FitConfig, evaluate_prior, validation_bound

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


@dataclass(frozen=True)
class ApiCase:
    """A bad call of the Python API: ``run(model, folder)`` with a tiny MNIST-sized model and an empty folder."""

    case: str
    entry: str
    error: type[Exception]
    message: str
    run: Callable[[NPDraw, Path], object]


@dataclass(frozen=True)
class CliCase:
    """A bad command line: ``argv(model_folder, folder)``, given a saved tiny model and an empty folder."""

    case: str
    message: str
    argv: Callable[[Path, Path], list[str]]


def _images(*shape: int, fill: float | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    images = torch.rand(*shape) if fill is None else torch.full(shape, fill)
    return images.to(dtype)


def _fit_in_float16_autocast(model: NPDraw, folder: Path) -> None:
    with torch.autocast("cpu", dtype=torch.float16):
        NPDraw(model.config).fit(_images(4, 1, 28, 28), progress=False)


def _resume_in_bfloat16(model: NPDraw, folder: Path) -> None:
    images, config = _images(4, 1, 28, 28), FitConfig(prior_epochs=0, epochs=0)
    NPDraw(model.config).fit(images, config, output_dir=folder / "run", progress=False)
    NPDraw(model.config).to(torch.bfloat16).fit(images, config, output_dir=folder / "run", resume=True,
                                                progress=False)


def _file(path: Path) -> Path:
    path.write_text("in the way")
    return path


def _saved(model: NPDraw, folder: Path) -> Path:
    return model.save_pretrained(folder / "model")


def _truncated_weights(model: NPDraw, folder: Path) -> Path:
    saved = _saved(model, folder)
    weights = saved / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:1000])
    return saved


def _edited_config(model: NPDraw, folder: Path, **changes: object) -> Path:
    saved = _saved(model, folder)
    config = json.loads((saved / CONFIG_NAME).read_text())
    (saved / CONFIG_NAME).write_text(json.dumps({**config, **changes}))
    return saved


def _resume_with_other_width(model: NPDraw, folder: Path) -> None:
    """Fit ``model`` into ``folder``, then resume that run with a model twice as wide."""
    images, config = _images(8, 1, 28, 28), FitConfig(prior_steps=1, steps=1, eval_every=1, batch_size=4,
                                                        prior_batch_size=4, bank_images=8)
    model.fit(images, config, output_dir=folder / "run", progress=False)
    wider = NPDrawConfig.from_dict({**model.config.to_dict(), "encoder_channels": 2 * model.config.encoder_channels})
    NPDraw(wider).fit(images, config, output_dir=folder / "run", resume=True, progress=False)


def _bad_manifest(model: NPDraw, folder: Path) -> Path:
    """A manifest whose bundled model "tiny" records a sha256 its weights file does not have."""
    _saved(model, folder).rename(folder / "tiny")
    files = {name: {"sha256": sha256_file(folder / "tiny" / name), "size": (folder / "tiny" / name).stat().st_size}
             for name in (CONFIG_NAME, WEIGHTS_NAME)}
    files[WEIGHTS_NAME]["sha256"] = "0" * 64
    entry = {"repo_id": "np-draw-test/tiny", "revision": "0" * 40, "bundled": True, "files": files}
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"models": {"tiny": entry}}))
    return manifest


def _junk_folder(folder: Path) -> Path:
    """A folder of files that are not readable images: text, and a PNG cut after its header."""
    images = folder / "images"
    images.mkdir()
    (images / "notes.txt").write_text("not an image")
    (images / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return images


class _Rows(torch.utils.data.Dataset):
    """A map-style dataset of the given rows."""

    def __init__(self, rows: list) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        return self.rows[i]


def _text_npz(folder: Path) -> Path:
    path = folder / "notes.npz"
    path.write_text("not an archive")
    return path


def _npz(folder: Path, images: np.ndarray) -> str:
    path = folder / "images.npz"
    np.savez(path, images=images)
    return str(path)


def _other_canvas(model: NPDraw) -> Latents:
    """Latents of two drawings holding the canvas of one of them."""
    parsed = model.parse(_images(2, 1, 28, 28))
    return Latents(parsed.ids, parsed.locs, parsed.present, canvas=parsed.canvas[:1])


def _cut_steps(model: NPDraw) -> Latents:
    """Two parses, the second cut to its first 3 steps."""
    parsed = model.parse(_images(2, 1, 28, 28))
    return Latents.cat([parsed[:1], Latents(parsed.ids[1:, :3], parsed.locs[1:, :3], parsed.present[1:, :3])])


API_CASES: list[ApiCase] = [
    ApiCase("wrong image size", "NPDraw.encode", InvalidInputError,
            "images must have shape (N, 1, 28, 28) (NCHW), got (2, 1, 20, 20)",
            lambda m, f: m.encode(_images(2, 1, 20, 20))),
    ApiCase("wrong number of channels", "NPDraw.reconstruct", InvalidInputError,
            "images must have shape (N, 1, 28, 28) (NCHW), got (2, 3, 28, 28)",
            lambda m, f: m.reconstruct(_images(2, 3, 28, 28))),
    ApiCase("NaN in the images", "NPDraw.encode", InvalidInputError,
            "images must be finite, got 1568 NaN or inf values",
            lambda m, f: m.encode(_images(2, 1, 28, 28, fill=float("nan")))),
    ApiCase("inf in a canvas", "NPDraw.decode", InvalidInputError,
            "canvas must be finite, got 1568 NaN or inf values",
            lambda m, f: m.decode(_images(2, 1, 28, 28, fill=float("inf")))),
    ApiCase("floats outside [0, 1] (uint8 0..255 is accepted and scaled)", "NPDraw.parse", InvalidInputError,
            "images must lie in [0, 1] (floats) or be uint8, got values in [255, 255]",
            lambda m, f: m.parse(_images(2, 1, 28, 28, fill=255.0))),
    ApiCase("integer dtype other than uint8", "NPDraw.encode", InvalidTypeError,
            "images must be uint8 (0..255) or floating point in [0, 1], got dtype torch.int32",
            lambda m, f: m.encode(_images(2, 1, 28, 28, fill=1, dtype=torch.int32))),
    ApiCase("not images in any accepted form", "NPDraw.encode", InvalidTypeError,
            "images must be a tensor, a NumPy array, a PIL image, a list of images, a torch Dataset or DataLoader, "
            "a Hugging Face datasets.Dataset, an ImageSource, or a folder path, got dict",
            lambda m, f: m.encode({"image": 0})),
    ApiCase("a list of neither images nor arrays", "NPDraw.encode", InvalidTypeError,
            "images: a list must hold only PIL images or only image tensors/arrays, got ['list']",
            lambda m, f: m.encode([[0.0]])),
    ApiCase("a colour image for a grey model", "NPDraw.reconstruct", InvalidInputError,
            "image 0 is a colour image (8x8 RGB) but the model takes grey images (channels=1)",
            lambda m, f: m.reconstruct(Image.new("RGB", (8, 8), (200, 30, 30)))),
    ApiCase("empty batch", "NPDraw.reconstruct", InvalidInputError,
            "images must hold at least one image, got an empty batch of shape (0, 1, 28, 28)",
            lambda m, f: m.reconstruct(_images(0, 1, 28, 28))),
    ApiCase("zero images asked for", "NPDraw.sample", InvalidInputError,
            "num_images must be a positive integer, got 0",
            lambda m, f: m.sample(0, progress=False)),
    ApiCase("negative count", "NPDraw.sample", InvalidInputError,
            "num_images must be a positive integer, got -3",
            lambda m, f: m.sample(-3, progress=False)),
    ApiCase("zero batch size", "NPDraw.encode", InvalidInputError,
            "batch_size must be a positive integer, got 0",
            lambda m, f: m.encode(_images(2, 1, 28, 28), batch_size=0)),
    ApiCase("a folder with no readable image (unreadable files are skipped with a warning)", "NPDraw.fit",
            InvalidInputError, "holds no readable image files",
            lambda m, f: m.fit(_junk_folder(f), progress=False)),
    ApiCase("a held-out folder that is not there", "NPDraw.fit", MissingFileError,
            "validation must be a folder of image files, got",
            lambda m, f: m.fit(_images(4, 1, 28, 28), validation=str(f / "held-out"), progress=False)),
    ApiCase("a FID reference that is neither a folder nor a statistics file", "metrics.fid", MissingFileError,
            "reference must be a folder of images or a FeatureStatistics file, got",
            lambda m, f: fid(_images(4, 1, 28, 28), str(f / "stats.safetensors"), progress=False)),
    ApiCase("a dataset row without an image (read when its batch is)", "NPDraw.fit", InvalidInputError,
            "images[0]: a dataset row must hold one image under 'image' or 'img', got the keys ['label', 'text']",
            lambda m, f: m.fit(_Rows([{"label": 1, "text": "no image"}]), progress=False)),
    ApiCase("negative epochs (0 skips the stage)", "NPDraw.fit", InvalidInputError,
            "epochs must be a non-negative integer, got -1",
            lambda m, f: m.fit(_images(4, 1, 28, 28), epochs=-1, progress=False)),
    ApiCase("a misspelt FitConfig field", "NPDraw.fit", InvalidInputError,
            "unknown FitConfig fields ['stepz']; the fields are ['seed',",
            lambda m, f: m.fit(_images(4, 1, 28, 28), stepz=3, progress=False)),
    ApiCase("zero learning rate", "NPDraw.fit", InvalidInputError,
            "decoder_lr must be a positive finite number, got 0",
            lambda m, f: m.fit(_images(4, 1, 28, 28), decoder_lr=0, progress=False)),
    ApiCase("validation fraction of 1", "NPDraw.fit", InvalidInputError,
            "val_fraction must be in [0, 1), got 1.0",
            lambda m, f: m.fit(_images(4, 1, 28, 28), val_fraction=1.0, progress=False)),
    ApiCase("a budget in epochs and in steps for one stage", "NPDraw.fit", InvalidInputError,
            "give epochs or steps, not both; got epochs=2 and steps=100",
            lambda m, f: m.fit(_images(4, 1, 28, 28), FitConfig(epochs=2, steps=100), progress=False)),
    ApiCase("one colour image without a batch axis", "NPDraw.reconstruct", InvalidInputError,
            "images: a 3-D tensor is read as grey images (N, H, W), and this model takes colour ones (N, 3, 32, 32); "
            "got (3, 32, 32): for one colour image, give a batch of one (images[None])",
            lambda m, f: NPDraw(NPDrawConfig.preset("cifar10", encoder_channels=8, decoder_channels=8)).reconstruct(
                torch.rand(3, 32, 32))),
    ApiCase("a Gumbel temperature that would rise", "NPDraw.fit", InvalidInputError,
            "tau_min must be at most tau_start (the temperature falls from tau_start to tau_min), got tau_min=0.9, "
            "tau_start=0.5",
            lambda m, f: m.fit(_images(4, 1, 28, 28), tau_start=0.5, tau_min=0.9, progress=False)),
    ApiCase("a string for a bool", "NPDraw.fit", InvalidTypeError,
            "fit_bank must be True or False, got 'no'",
            lambda m, f: m.fit(_images(4, 1, 28, 28), fit_bank="no", progress=False)),
    ApiCase("a string for a bool argument (a non-empty string counts as True)", "NPDraw.encode", InvalidTypeError,
            "sample must be True or False, got 'no'",
            lambda m, f: m.encode(_images(2, 1, 28, 28), sample="no")),
    ApiCase("a float16 model", "NPDraw.fit", InvalidTypeError, "fit needs a float32 or bfloat16 model, got float16",
            lambda m, f: NPDraw(m.config).half().fit(_images(4, 1, 28, 28), progress=False)),
    ApiCase("fit inside torch.autocast(dtype=torch.float16), which trains without loss scaling", "NPDraw.fit",
            InvalidInputError, "fit is called inside torch.autocast(dtype=torch.float16)", _fit_in_float16_autocast),
    ApiCase("resuming a float32 run with a bfloat16 model", "NPDraw.fit", InvalidInputError,
            "it trained the model in float32, and this one is bfloat16", _resume_in_bfloat16),
    ApiCase("parses of other images than those given", "np_draw.training.validation_bound", InvalidInputError,
            "as many of each and at least one, got 3 images and 2 parses",
            lambda m, f: validation_bound(m, _images(3, 1, 28, 28), m.parse(_images(2, 1, 28, 28)))),
    ApiCase("no latents", "np_draw.training.evaluate_prior", InvalidInputError,
            "evaluate_prior needs at least one latent sequence, got none",
            lambda m, f: evaluate_prior(m.prior, m.bank, m.parse(_images(2, 1, 28, 28))[:0])),
    ApiCase("learning rates so large that the loss becomes NaN", "NPDraw.fit", TrainingDivergedError,
            "training diverged; lower the learning rates",
            lambda m, f: NPDraw(m.config).fit(_images(8, 1, 28, 28), FitConfig(
                prior_steps=2, steps=2, eval_every=1, batch_size=4, prior_batch_size=4, bank_images=8,
                prior_lr=1e8, encoder_lr=1e8, decoder_lr=1e8), progress=False)),
    ApiCase("a dict for the FitConfig", "NPDraw.fit", InvalidTypeError,
            "config must be a FitConfig (or None), got dict",
            lambda m, f: m.fit(_images(4, 1, 28, 28), {"steps": 2}, progress=False)),
    ApiCase("an output_dir that cannot be created (a file is in the way)", "NPDraw.fit", UnwritablePathError,
            "output_dir: cannot create the folder",
            lambda m, f: m.fit(_images(4, 1, 28, 28), output_dir=_file(f / "run"), progress=False)),
    ApiCase("latents whose part ids lie outside the bank", "NPDraw.decode", InvalidInputError,
            "latents ids must lie in [0, 50) and locs in [0, 36), got ids in [50, 50] and locs in [0, 0]",
            lambda m, f: m.decode(Latents(torch.full((1, 36), 50), torch.zeros(1, 36, dtype=torch.long),
                                          torch.ones(1, 36)))),
    ApiCase("a grid with a negative number of images per row", "SampleOutput.save_grid", InvalidInputError,
            "nrow must be a positive integer, got -1",
            lambda m, f: SampleOutput(_images(4, 1, 28, 28), None).save_grid(f / "grid.png", nrow=-1)),
    ApiCase("an empty model name", "NPDraw.from_pretrained", InvalidInputError,
            "name_or_path must name a model folder, a pretrained name or a Hub repo, got ''",
            lambda m, f: NPDraw.from_pretrained("")),
    ApiCase("a dtype name that is none", "NPDraw.from_pretrained", InvalidTypeError,
            "dtype must be a floating torch dtype such as torch.float32, torch.bfloat16 or torch.float16, or 'auto', "
            "got 'float17'", lambda m, f: NPDraw.from_pretrained("mnist", dtype="float17")),
    ApiCase("a float8 dtype, a storage format the model cannot compute in", "NPDraw.from_pretrained",
            InvalidTypeError, "got torch.float8_e4m3fn: a storage format, with no convolutions or matrix products",
            lambda m, f: NPDraw.from_pretrained("mnist", dtype="float8_e4m3fn")),
    ApiCase("a complex dtype for the model", "NPDraw.to", InvalidTypeError,
            "dtype must be a floating torch dtype such as torch.float32, torch.bfloat16 or torch.float16, got "
            "torch.complex64", lambda m, f: m.to(torch.complex64)),
    ApiCase("a device that is not one", "NPDraw.from_pretrained", InvalidInputError,
            "device must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got 'gpu'",
            lambda m, f: NPDraw.from_pretrained("mnist", device="gpu")),
    ApiCase("unknown model name", "NPDraw.from_pretrained", UnknownModelError,
            "'mnsit' is not a model folder, a known pretrained name (celeba, cifar10, mnist, omniglot) or a Hub "
            "repo id 'owner/name[@revision]'",
            lambda m, f: NPDraw.from_pretrained("mnsit")),
    ApiCase("a folder path that does not exist", "NPDraw.from_pretrained", UnknownModelError,
            "is not a model folder: there is nothing at that path",
            lambda m, f: NPDraw.from_pretrained(f / "no-such-folder")),
    ApiCase("too few images to fit a part bank from scratch", "NPDraw.fit", InvalidInputError,
            "fewer than num_parts=50: give more images, a config with fewer parts, or fine-tune a pretrained model",
            lambda m, f: NPDraw(m.config).fit(torch.zeros(2, 1, 28, 28), progress=False)),
    ApiCase("unknown preset", "NPDrawConfig.preset", UnknownModelError,
            "unknown preset 'mnsit'; known presets are ['celeba', 'cifar10', 'mnist', 'omniglot']",
            lambda m, f: NPDrawConfig.preset("mnsit")),
    ApiCase("truncated safetensors file", "NPDraw.from_pretrained", CorruptWeightsError,
            "model.safetensors is not a readable safetensors file (corrupted or truncated?)",
            lambda m, f: NPDraw.from_pretrained(_truncated_weights(m, f))),
    ApiCase("config that does not match the weights", "NPDraw.from_pretrained", ConfigMismatchError,
            "do not match their config",
            lambda m, f: NPDraw.from_pretrained(_edited_config(m, f, num_parts=7))),
    ApiCase("config asking for an absurd size (refused from the weights' header, before allocating 25 GB)",
            "NPDraw.from_pretrained", ConfigMismatchError,
            "encoder.features.0.0.weight has shape [16, 1, 3, 3] in model.safetensors, the config makes it "
            "[20000, 1, 3, 3]",
            lambda m, f: NPDraw.from_pretrained(_edited_config(m, f, encoder_channels=20000))),
    ApiCase("resuming a run with a model of another config", "NPDraw.fit", ConfigMismatchError,
            "its model weights, written by another np-draw version or config, do not fit this model",
            _resume_with_other_width),
    ApiCase("config asking for an absurd number of layers (refused from the weights' names, before building them)",
            "NPDraw.from_pretrained", ConfigMismatchError,
            "do not match their config: it makes prior.blocks 100000 long, model.safetensors holds 8",
            lambda m, f: NPDraw.from_pretrained(_edited_config(m, f, prior={**m.config.to_dict()["prior"],
                                                                            "num_layers": 100_000}))),
    ApiCase("a string for a bool in config.json", "NPDraw.from_pretrained", InvalidInputError,
            "config.json is not a valid NP-DRAW config: binarize must be True or False, got 'false'",
            lambda m, f: NPDraw.from_pretrained(_edited_config(m, f, binarize="false"))),
    ApiCase("config.json with an unexpected key", "NPDraw.from_pretrained", InvalidInputError,
            "config.json is not a valid NP-DRAW config: unknown config keys ['command']",
            lambda m, f: NPDraw.from_pretrained(_edited_config(m, f, command="rm -rf /"))),
    ApiCase("weights that differ from the manifest's sha256", "np_draw.hub.resolve_pretrained",
            CorruptWeightsError, "the bundled model.safetensors of 'tiny'",
            lambda m, f: resolve_pretrained("tiny", manifest=_bad_manifest(m, f))),
    ApiCase("unwritable output folder", "NPDraw.save_pretrained", UnwritablePathError,
            "cannot create the output folder",
            lambda m, f: m.save_pretrained(_saved(m, f) / WEIGHTS_NAME / "inside")),
    ApiCase("grid cells given as floats (a bool list is a mask, ints are cells)", "np_draw.editing.paste_latents",
            InvalidInputError, "cells must be ints in [0, 36) or a boolean mask, got [1.7]",
            lambda m, f: paste_latents(m, m.parse(_images(1, 1, 28, 28)), m.parse(_images(1, 1, 28, 28)),
                                       cells=[1.7])),
    ApiCase("latents where canvases go", "np_draw.editing.paste_canvas", InvalidTypeError,
            "target and source must be canvas tensors (e.g. latents.canvas), got Latents and Latents",
            lambda m, f: paste_canvas(m.grid, m.parse(_images(1, 1, 28, 28)), m.parse(_images(1, 1, 28, 28)),
                                      cells=[1])),
    ApiCase("latents whose steps do not line up", "NPDraw.render", InvalidInputError,
            "latents ids, locs and present must each have shape (N=1, k) with k <= T=36",
            lambda m, f: _render_cut(m)),
    ApiCase("a step drawn half (present is z_is, 0 or 1)", "NPDraw.render", InvalidInputError,
            "latents present must hold only 0 and 1, got 1 other values such as 0.5",
            lambda m, f: m.render(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long),
                                  torch.tensor([[1.0, 0.5]]))),
    ApiCase("part indices as floats (floating ids are a relaxed sample's weights)", "NPDraw.render",
            InvalidInputError, "floating ids are a relaxed sample, (N, T, B=50) weights over the parts, with locs "
            "(N, T) or (N, T, L=36) and present (N, T); got ids (1, 36) torch.float32",
            lambda m, f: _render_float_ids(m)),
    ApiCase("ids, locs and present as lists", "NPDraw.render", InvalidTypeError,
            "ids, locs and present must be torch tensors, got {'ids': 'list', 'locs': 'list', 'present': 'list'}",
            lambda m, f: m.render([[0]], [[0]], [[1.0]])),
    ApiCase("grey targets for a Bernoulli model's importance weights", "NPDraw.log_weights", InvalidInputError,
            "x must be binary (0 and 1) for this model's Bernoulli likelihood, got 784 values strictly between 0 "
            "and 1: binarise them first",
            lambda m, f: m.log_weights(torch.full((1, 1, 28, 28), 0.5), 2)),
    ApiCase("no importance samples", "NPDraw.log_weights", InvalidInputError,
            "num_samples must be a positive integer, got 0",
            lambda m, f: m.log_weights(torch.zeros(1, 1, 28, 28), 0)),
    ApiCase("a string for strict", "NPDraw.from_pretrained", InvalidTypeError,
            "strict must be True or False, got 'no'",
            lambda m, f: NPDraw.from_pretrained(_saved(m, f), strict="no")),
    ApiCase("an integer dtype for latents", "Latents.to", InvalidTypeError,
            "Latents.to takes a floating dtype (ids and locs stay integers), got torch.int64",
            lambda m, f: m.parse(_images(1, 1, 28, 28)).to(torch.int64)),
    ApiCase("steps sliced through the latents", "Latents.__getitem__", InvalidInputError,
            "Latents index the batch axis only (an int, a slice, indices or a boolean mask over N)",
            lambda m, f: m.parse(_images(2, 1, 28, 28))[:, :18]),
    ApiCase("two images where interpolate takes one", "np_draw.editing.interpolate", InvalidInputError,
            "first must be one image, got 2 (shape (2, 28, 28))",
            lambda m, f: interpolate(m, _images(2, 1, 28, 28)[:, 0], _images(1, 1, 28, 28)[0])),
    ApiCase("a drawing's GIF in a folder that does not exist", "np_draw.pictures.save_drawing_gif",
            UnwritablePathError, "cannot write",
            lambda m, f: save_drawing_gif(m, m.parse(_images(1, 1, 28, 28)), f / "missing" / "drawing.gif")),
    ApiCase("an outline colour by name", "np_draw.pictures.drawing_frames", InvalidInputError,
            "colour must be three floats in [0, 1] (RGB), got 'red'",
            lambda m, f: drawing_frames(m, m.parse(_images(1, 1, 28, 28)), colour="red")),
    ApiCase("an empty batch of latents to complete", "NPDraw.complete", InvalidInputError,
            "latents must hold at least one drawing, got an empty batch",
            lambda m, f: m.complete(m.parse(_images(2, 1, 28, 28))[:0], 3)),
    ApiCase("a string for final (a non-empty string counts as True)", "np_draw.pictures.drawing_frames",
            InvalidTypeError, "final must be True or False, got 'no'",
            lambda m, f: drawing_frames(m, m.parse(_images(1, 1, 28, 28)), final="no")),
    ApiCase("a NumPy array of Python objects", "NPDraw.encode", InvalidTypeError,
            "images must be uint8 (0..255) or floating point in [0, 1], got a NumPy array of dtype object",
            lambda m, f: m.encode(np.zeros((2, 28, 28), dtype=object))),
    ApiCase("images on the meta device (shapes without data)", "NPDraw.encode", InvalidInputError,
            "images is on the 'meta' device, which holds shapes without data",
            lambda m, f: m.encode(_images(2, 1, 28, 28).to("meta"))),
    ApiCase("a sparse tensor", "NPDraw.decode", InvalidTypeError,
            "canvas must be a dense tensor, got layout torch.sparse_coo",
            lambda m, f: m.decode(_images(2, 1, 28, 28).to_sparse())),
    ApiCase("latents whose canvas holds other drawings than their steps", "NPDraw.decode", InvalidInputError,
            "latents canvas must hold one canvas per drawing, got 1 canvases for 2 drawings",
            lambda m, f: m.decode(_other_canvas(m))),
    ApiCase("one Latents where a list of them goes (it was concatenated drawing by drawing)", "Latents.cat",
            InvalidTypeError, "Latents.cat takes a list of Latents, got Latents",
            lambda m, f: Latents.cat(m.parse(_images(2, 1, 28, 28)))),
    ApiCase("latents of different numbers of steps", "Latents.cat", InvalidInputError,
            "Latents.cat needs ids of one shape past the batch axis (drawings of as many steps, of one model), got "
            "shapes [(1, 36), (1, 3)]",
            lambda m, f: _cut_steps(m)),
    ApiCase("a string as an index", "Latents.__getitem__", InvalidTypeError,
            "Latents index the batch axis with an int, a slice, indices or a boolean mask, got str 'a'",
            lambda m, f: m.parse(_images(2, 1, 28, 28))["a"]),
    ApiCase("a prior config key that does not exist", "NPDrawConfig", InvalidInputError,
            "unknown prior config keys ['heads']",
            lambda m, f: NPDrawConfig(prior={"heads": 4})),
    ApiCase("another model's part bank", "np_draw.prior.Prior.log_prob", InvalidInputError,
            "bank must hold this prior's B=50 parts of C x K x K = 1 x 5 x 5 pixels, shape (50, 1, 5, 5), got parts "
            "of shape (200, 3, 4, 4)",
            lambda m, f: m.prior.log_prob(m.parse(_images(1, 1, 28, 28)), PartBank(200, 3, 4))),
    ApiCase("a seed beyond torch's range", "np_draw.metrics.nll", InvalidInputError,
            "seed must be an int in [-2**63, 2**64), got 1180591620717411303424",
            lambda m, f: nll(m, _images(1, 1, 28, 28, fill=1.0), 2, seed=2**70, progress=False)),
    ApiCase("more importance samples than memory holds (refused before running for hours)", "np_draw.metrics.nll",
            InvalidInputError, "importance samples of one image take",
            lambda m, f: nll(m, _images(1, 1, 28, 28, fill=1.0), 10**17, progress=False)),
    ApiCase("something else than a model", "np_draw.editing.interpolate", InvalidTypeError,
            "model must be an NPDraw (e.g. NPDraw.from_pretrained('mnist')), got NoneType",
            lambda m, f: interpolate(None, _images(1, 28, 28), _images(1, 28, 28))),
    ApiCase("a fit seed beyond torch's range", "NPDraw.fit", InvalidInputError,
            "seed must be an int in [0, 2**63), got 1180591620717411303424",
            lambda m, f: m.fit(_images(4, 1, 28, 28), FitConfig(seed=2**70), progress=False)),
    ApiCase("an int for a folder", "NPDraw.save_pretrained", InvalidTypeError,
            "folder must be a str or a path, got int",
            lambda m, f: m.save_pretrained(3)),
    ApiCase("NaN images to score", "np_draw.metrics.psnr", InvalidInputError,
            "reconstruction must be finite, got 1568 NaN or inf values",
            lambda m, f: psnr(_images(2, 1, 28, 28, fill=float("nan")), _images(2, 1, 28, 28))),
    ApiCase("one stacked tensor for the columns (each image became a column)", "np_draw.pictures.comparison_image",
            InvalidTypeError, "columns must be a list of image batches (N, C, H, W), got one tensor of shape "
            "(2, 4, 1, 28, 28)",
            lambda m, f: comparison_image(_images(2, 4, 1, 28, 28))),
    ApiCase("a part bank fitted on images of another size", "np_draw.bank.PartBank.fit", InvalidInputError,
            "images must be a floating (N, 1, 28, 28) tensor in [0, 1] (the grid's canvas size), got (20, "
            "1, 20, 20) torch.float32",
            lambda m, f: PartBank(5, 1, 5).fit(_images(20, 1, 20, 20), m.grid)),
    ApiCase("a part bank of a negative size", "np_draw.bank.PartBank", InvalidInputError,
            "num_parts must be a positive integer, got -1",
            lambda m, f: PartBank(-1, 1, 5)),
    ApiCase("images read with two channels", "np_draw.images.load_images", InvalidInputError,
            "channels must be 1 (grey) or 3 (RGB), got 2",
            lambda m, f: load_images(_npz(f, np.zeros((2, 28, 28), np.uint8)), channels=2, size=28)),
]

CLI_CASES: list[CliCase] = [
    CliCase("unknown model name", "'mnsit' is not a model folder",
            lambda model, f: ["sample", "mnsit", "-n", "1", "-o", str(f / "x.png"), "-q"]),
    CliCase("zero images asked for", "argument -n/--num-images: must be a positive integer, got '0'",
            lambda model, f: ["sample", str(model), "-n", "0", "-o", str(f / "x.png"), "-q"]),
    CliCase("a misspelt option (reported by its subcommand)", "np-draw sample: error: unrecognized arguments: --seeds 3",
            lambda model, f: ["sample", str(model), "--seeds", "3", "-o", str(f / "x.png")]),
    CliCase("truncated safetensors file", "is not a readable safetensors file (corrupted or truncated?)",
            lambda model, f: ["sample", str(_truncate(model)), "-n", "1", "-o", str(f / "x.png"), "-q"]),
    CliCase("images of the wrong size", "must have shape (N, 1, 28, 28) (NCHW), got (2, 1, 20, 20)",
            lambda model, f: ["reconstruct", str(model), _npz(f, np.zeros((2, 1, 20, 20), np.uint8)),
                              "-o", str(f / "x.png")]),
    CliCase("a text file named .npz", "is not a readable .npz archive of a numeric 'images' array: it is not a zip archive",
            lambda model, f: ["reconstruct", str(model), str(_text_npz(f)), "-o", str(f / "x.png")]),
    CliCase("floats outside [0, 1]", "must lie in [0, 1] (floats) or be uint8, got values in [2, 2]",
            lambda model, f: ["reconstruct", str(model), _npz(f, np.full((2, 28, 28), 2.0, np.float32)),
                              "-o", str(f / "x.png")]),
    CliCase("NaN in the images", "must be finite, got 1568 NaN or inf values",
            lambda model, f: ["reconstruct", str(model), _npz(f, np.full((2, 28, 28), np.nan, np.float32)),
                              "-o", str(f / "x.png")]),
    CliCase("-o in a folder that does not exist", "does not exist",
            lambda model, f: ["sample", str(model), "-n", "1", "-o", str(f / "missing" / "x.png")]),
    CliCase("-o that is a folder (refused before sampling)", "is a folder, not a file",
            lambda model, f: ["sample", str(model), "-n", "1", "-o", str(_folder(f / "taken.png")), "-q"]),
    CliCase("-o with a suffix Pillow cannot write (refused before sampling)", "is not a picture format Pillow writes",
            lambda model, f: ["sample", str(model), "-n", "1", "-o", str(f / "grid.xyz"), "-q"]),
    CliCase("a seed out of range", "argument --seed: must be an integer in [0, 2**63)",
            lambda model, f: ["sample", str(model), "-n", "1", "--seed", "99999999999999999999", "-q"]),
    CliCase("--device meta (shapes without data)", "device 'meta' holds no data",
            lambda model, f: ["sample", str(model), "-n", "1", "--device", "meta", "-o", str(f / "x.png"), "-q"]),
    CliCase("--crop larger than an image file", "crop=148 px does not fit",
            lambda model, f: ["reconstruct", str(model), _png(f, 120, 160), "--crop", "148", "-o", str(f / "x.png")]),
    CliCase("eval --limit 1 (the FID needs two images)", "argument --limit: must be an integer of at least 2",
            lambda model, f: ["eval", str(model), "--data", _npz(f, np.zeros((4, 28, 28), np.uint8)), "--limit", "1"]),
    CliCase("eval of a single image (the FID needs two)", "--data: the FID needs at least 2 images",
            lambda model, f: ["eval", str(model), "--data", _npz(f, np.zeros((1, 28, 28), np.uint8))]),
    CliCase("--fit-bank with --keep-prior (a refitted bank needs a retrained prior)", "--fit-bank with --keep-prior",
            lambda model, f: ["fit", _npz(f, np.zeros((4, 28, 28), np.uint8)), "-o", str(f / "out"), "--from",
                              str(model), "--fit-bank", "--keep-prior"]),
    CliCase("fit without --preset on an .npz whose images are not (N, H, W) or (N, C, H, W)",
            "its 'images' array has shape (784,)",
            lambda model, f: ["fit", _npz(f, np.zeros(784, np.uint8)), "-o", str(f / "out")]),
]


def _npz(folder: Path, images: np.ndarray) -> str:
    path = folder / "images.npz"
    np.savez(path, images=images)
    return str(path)


def _render_cut(model: NPDraw) -> None:
    """render of a parse whose locations are cut to 5 steps."""
    parsed = model.parse(_images(1, 1, 28, 28))
    model.render(parsed.ids, parsed.locs[:, :5], parsed.present)


def _render_float_ids(model: NPDraw) -> None:
    """render of a parse whose part indices were turned into floats."""
    parsed = model.parse(_images(1, 1, 28, 28))
    model.render(parsed.ids.float(), parsed.locs, parsed.present)


def _png(folder: Path, width: int, height: int) -> str:
    path = folder / "photo.png"
    Image.new("L", (width, height)).save(path)
    return str(path)


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _truncate(model_folder: Path) -> Path:
    weights = model_folder / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:1000])
    return model_folder


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """docs/errors.md, from :data:`API_CASES` and :data:`CLI_CASES`."""
    lines = [
        "# Errors",
        "",
        "Generated by `python -m tests.error_catalogue` from the cases `tests/test_errors.py` runs; do not edit.",
        "",
        ("Every error np-draw raises on purpose is an `np_draw.NPDrawError`, and also the builtin exception the same "
        "mistake has always raised (`ValueError`, `TypeError` or `OSError`), so `except ValueError` code keeps "
        "working:"),
        "",
        "| exception | also a | raised when |",
        "|---|---|---|",
    ]
    from np_draw import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        bases = ", ".join(f"`{b.__name__}`" for b in cls.__mro__[1:] if b.__module__ == "builtins"
                          and b not in (Exception, BaseException, object))
        lines.append(f"| `{name}` | {bases} | {_cell(' '.join(cls.__doc__.split()))} |")
    lines += [
        "",
        ("A message names the argument, what was expected and what was given. A folder of images is read with every "
        "file Pillow can open; files that are not images or are truncated are skipped with a logged warning naming "
        "them, and a folder with no readable image at all is an error."),
        "",
        "## Python API",
        "",
        "| case | entry point | exception | message (part) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {_cell(c.case)} | `{c.entry}` | `{c.error.__name__}` | {_cell(c.message)} |" for c in API_CASES]
    lines += [
        "",
        "## Command line",
        "",
        ("Each prints one line on stderr, `np-draw COMMAND: error: MESSAGE` (argparse's own errors: "
        "`np-draw COMMAND: error: argument ...`), with no traceback, and exits with code 2."),
        "",
        "| case | message (part) |",
        "|---|---|",
    ]
    lines += [f"| {_cell(c.case)} | {_cell(c.message)} |" for c in CLI_CASES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
