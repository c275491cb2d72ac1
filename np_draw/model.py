"""NPDraw, the whole model: the part bank, the prior p(z), the encoder q(z | x) and the decoder p(x | canvas), and
the joint they make: rendering latents into a canvas, the stage-2 objective, the importance weights of the bound.

One rule decides what is a method here: what the model computes from images, latents or noise with its own weights
(parse, encode, decode, reconstruct, render, sample, complete, objective, log_weights), training it (fit), and
saving and loading it. What is done with those results (measuring them: np_draw.metrics; editing latents and
canvases: np_draw.editing; pictures of them: np_draw.pictures) is a function taking the model as its first argument.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import numbers
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from huggingface_hub import HfApi, ModelCard, ModelHubMixin, constants
from huggingface_hub.utils import HfHubHTTPError
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from . import hub
from .bank import PartBank
from .canvas import Grid
from .checkpoint import load_checkpoint
from .config import NPDrawConfig
from .elbo import Terms, kl_per_step, relaxed_sample, substitute
from .errors import (
    CorruptWeightsError,
    InvalidInputError,
    InvalidTypeError,
    NPDrawError,
    UnwritablePathError,
    check_count,
    check_device,
    check_dtype,
    check_flags,
    check_path,
    check_temperature,
)
from .images import ImageSource, TensorImages, as_image_tensor, check_images, image_source, save_grid, to_canvas, to_pil
from .latents import Latents
from .likelihoods import Bernoulli, make_likelihood
from .memory import physical_memory
from .model_files import check_weights, folder_state, load_config, load_weights, write_model_files
from .networks import Decoder, Encoder, Overlapping, autocast_dtype, evaluating, slow_on_cpu
from .parsing import parse
from .prior import Prior
from .training import FitConfig, FitHistory, fit

logger = logging.getLogger(__name__)

Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass
class SampleOutput:
    """What :meth:`NPDraw.sample` returns.

    images: (N, C, H, W) float in [0, 1]. latents: the sampled latents, with their canvases (N, C, S, S).
    """

    images: torch.Tensor
    latents: Latents

    def to_pil(self) -> list[Image.Image]:
        """The images as PIL images ("L" for grey, "RGB")."""
        return to_pil(self.images)

    def save_grid(self, path: str | Path, nrow: int | None = None) -> Path:
        """Save the images as one grid picture, ``nrow`` per row (default: square)."""
        return save_grid(self.images, path, nrow)


def check_generators(generator: Generators, count: int) -> None:
    """None, one torch.Generator, or a list of exactly ``count`` of them; else a clear error."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if not isinstance(generator, Sequence) or not all(isinstance(g, torch.Generator) for g in generator):
        raise InvalidTypeError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}")
    if len(generator) != count:
        raise InvalidInputError(f"generator must be one torch.Generator or a list of {count} (one per image), "
                                f"got a list of {len(generator)}")


def uniform_noise(shape: Sequence[int], count: int, generator: Generators, device: torch.device) -> torch.Tensor:
    """(count, *shape) float32 uniform noise on ``device``.

    With a list of generators, image i's noise comes from generator i alone, so an image does not depend on the
    batch it is drawn in. Noise is drawn on the generator's own device (CPU for None), then moved. It stays float32
    whatever the model's dtype: in bfloat16 a quarter of uniform draws round to 1.0, where a Gumbel draw is infinite;
    and whatever ``torch.get_default_dtype()``: a float64 draw takes other bits from the generator, so a seed would
    draw other latents after ``torch.set_default_dtype(torch.float64)``.
    """
    if generator is None or isinstance(generator, torch.Generator):
        source = "cpu" if generator is None else generator.device
        noise = torch.rand((count, *shape), generator=generator, device=source, dtype=torch.float32)
    else:
        check_generators(generator, count)
        noise = torch.stack([torch.rand(tuple(shape), generator=g, device=g.device, dtype=torch.float32)
                             for g in generator])
    return noise.to(device)


# The fewest images a CPU thread draws on its own (measured: pieces of 32 or 64 drew MNIST slower than one thread,
# their Python overheads queueing for the interpreter lock; of 128, 1.3x faster, CelebA 2.2x).
_PIECE = 128
_RENDER_BATCH = 1024
# The CPU decodes a batch a few images at a time, each of the decoder's activations under 32 MiB: the C allocator
# hands smaller blocks back from its free lists, where larger ones are fresh memory from the operating system at every
# call, a page fault per 4 KiB (glibc maps blocks over 32 MiB afresh; at CelebA's 64 x 64 px, 128 images at once
# took 1.3x as long as 16 at a time, bench_sampling_detail.py). On the machine measured, pieces of 16 images or more
# computed the same values as the whole batch, and smaller ones differed in the last bits (the convolution library
# picks its kernels by batch size): a piece holds 16 MiB to 32 MiB of activations.
_DECODE_BYTES = 16 * 2**20


def _slices(count: int, size: int) -> list[slice]:
    return [slice(start, start + size) for start in range(0, count, size)]


def _drawn_parts(bank: PartBank, grid: Grid, ids: torch.Tensor, locs: torch.Tensor,
                present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each step's part times z_is, (N, T, C, K, K), and its (N, T, L) one-hot locations, in the bank's dtype and on
    its device: what :meth:`Grid.place` takes. ``ids``, ``locs``, ``present`` as for :func:`render`. z_is multiplies
    the K x K parts, not the S x S canvases: the same values and gradients for a fraction of the work."""
    # Hard ids and locs as int64 whatever their integer dtype: uint8 ones would index the bank as a mask
    parts = bank(ids.to(bank.parts)) if ids.is_floating_point() else bank.lookup(ids.to(bank.parts.device, torch.long))
    locs = locs.to(parts) if locs.is_floating_point() \
        else F.one_hot(locs.to(parts.device, torch.long), grid.num_cells).to(parts)
    return parts * present.to(parts)[:, :, None, None, None], locs


def place(bank: PartBank, grid: Grid, ids: torch.Tensor, locs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Each drawn step's part on a canvas of its own: (N, T, C, S, S), zero for a step not drawn, in the bank's dtype
    and on its device. ``ids``, ``locs``, ``present`` as for :func:`render`."""
    return grid.place(*_drawn_parts(bank, grid, ids, locs, present))


def render(bank: PartBank, grid: Grid, ids: torch.Tensor, locs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Compose the canvas of latents: their parts pasted in step order, the running maximum of the drawn ones. The
    one renderer of whole latent sequences, hard or relaxed (encoding, parsing, editing, training and the bound use it;
    sampling draws its canvas a step at a time, :meth:`np_draw.Prior.sample`).

    Args:
        bank: the parts, (B, C, K, K) in [0, 1].
        grid: the canvas's cells.
        ids: (N, T) part indices, or (N, T, B) weights over the bank (a relaxed sample).
        locs: (N, T) grid cells, or (N, T, L) one-hot weights.
        present: (N, T) z_is in {0, 1} (straight-through values for a relaxed sample).
    Returns:
        (N, C, S, S) in [0, 1], in the bank's dtype and on its device.
    """
    # On a grid whose cells overlap each step's placed part is a canvas of its own, T times the output: a large batch
    # is composed in pieces.
    rows = _slices(len(ids), _RENDER_BATCH) or [slice(None)]
    return torch.cat([grid.compose(*_drawn_parts(bank, grid, ids[r], locs[r], present[r])) for r in rows])


def _record(states: list, folder: str) -> None:
    """Append the state of the model folder ``folder`` to ``states`` (as the weights file is opened)."""
    states.append(folder_state(folder))


# How many times from_pretrained reads a folder whose files a save keeps replacing before it gives up
_LOAD_ATTEMPTS = 5
# How a fitted model's card names its training data when the weights it was loaded with had a data licence
_REFITTED = ("the images these weights were fitted on (the Data section names them, when recorded), and those of "
             "the weights they started from: ")


@functools.cache
def _workers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="np_draw")


# A process forked after sampling (a DataLoader worker, a multiprocessing pool) inherits the pool but none of its
# threads, and the pool believes its idle threads are still there: work handed to it would wait forever.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_workers.cache_clear)


# The caller's intra-op thread count, which draws under way on the CPU found
_THREADS = Overlapping()


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[int]:
    """One intra-op thread for the calling thread inside the block, which yields the caller's setting and hands it
    back after. ``torch.set_num_threads`` also sets the count that threads started later begin with, so draws that
    overlap (two threads sampling, as the demo's requests do) share the setting the first found: one that began
    while another drew found that draw's 1 and, ending last, left it to every thread started afterwards."""
    with _THREADS.lock:
        threads = _THREADS.hold({"threads": torch.get_num_threads()})["threads"]
        torch.set_num_threads(1)
    try:
        yield threads
    finally:
        with _THREADS.lock:
            _THREADS.release(["threads"])
            torch.set_num_threads(threads)


def check_model(model: Any) -> None:
    """An NPDraw, else an :class:`InvalidTypeError`: the functions that take a model (editing, metrics, pictures)
    failed on anything else with an AttributeError from deep inside."""
    if not isinstance(model, NPDraw):
        raise InvalidTypeError(f"model must be an NPDraw (e.g. NPDraw.from_pretrained('mnist')), got "
                               f"{type(model).__name__}")


def _check_used(generator: Generators, drawing: bool, flag: str, otherwise: str) -> None:
    """Refuse a generator that would seed nothing: a caller who passes one expects a draw."""
    if generator is not None and not drawing:
        raise InvalidInputError(f"generator seeds a draw, which needs {flag}; without it {otherwise} and draws "
                                "nothing: pass " + flag + " or leave generator out")


class NPDraw(nn.Module, ModelHubMixin):
    """NP-DRAW (Zeng et al., UAI 2021): images drawn part by part on a canvas, then decoded.

    Args:
        config: the model's sizes; see :class:`np_draw.NPDrawConfig` and its presets.

    Example:
        >>> from np_draw import NPDraw, NPDrawConfig
        >>> model = NPDraw(NPDrawConfig.preset("mnist")).eval()
        >>> model.sample(4, generator=torch.Generator().manual_seed(0), progress=False).images.shape
        torch.Size([4, 1, 28, 28])
    """

    def __init__(self, config: NPDrawConfig) -> None:
        if not isinstance(config, NPDrawConfig):
            raise InvalidTypeError(f"config must be an NPDrawConfig, got {type(config).__name__}; make one with "
                                   "NPDrawConfig.preset('mnist'), NPDrawConfig(**fields) or NPDrawConfig.from_dict")
        super().__init__()
        self.config = config
        # The licence terms of the card the weights were loaded from, which save_pretrained's card keeps.
        self.card_licence: dict[str, str] = {}
        self.grid = Grid(config.canvas_size, config.part_size, config.stride, config.padding)
        self.bank = PartBank(config.num_parts, config.channels, config.part_size)
        self.prior = Prior(config.prior, self.grid, config.channels, config.num_parts)
        self.encoder = Encoder(config)
        self.likelihood = make_likelihood(config.likelihood, config.channels, config.num_mixtures)
        self.decoder = Decoder(config, self.likelihood.num_params)
        # Convolutions in channels-last layout run 1.3-1.6x faster on the CPU (oneDNN), forward and backward, the
        # decoder's transposed ones most; weights saved to disk are made contiguous, so files do not change.
        self.encoder.to(memory_format=torch.channels_last)
        self.decoder.to(memory_format=torch.channels_last)

    @property
    def device(self) -> torch.device:
        """Where the model's tensors are."""
        return self.bank.parts.device

    @property
    def dtype(self) -> torch.dtype:
        """The model's floating dtype."""
        return self.bank.parts.dtype

    def to(self, *args: Any, **kwargs: Any) -> NPDraw:
        """``torch.nn.Module.to`` (a device, a dtype, a tensor, ``memory_format``): float32, bfloat16, float16 and
        float64 work; another dtype (complex, float8, an integer one) is an :class:`InvalidTypeError`."""
        # torch moves a module to a complex or float8 dtype, and every method then failed deep inside (clamp is not
        # supported for complex types; "mul_cpu_reduced_float" not implemented for 'Float8_e4m3fn')
        try:
            dtype = torch._C._nn._parse_to(*args, **kwargs)[1]
        except (TypeError, RuntimeError):  # torch's own error for arguments it does not take, from super().to
            dtype = None
        if dtype is not None:
            check_dtype(dtype)
        return super().to(*args, **kwargs)

    @property
    def is_fitted(self) -> bool:
        """Whether the part bank has been fitted (a trained or loaded model); :meth:`fit` then fine-tunes."""
        return bool(self.bank.parts.any())

    def prepare_images(self, images: Any, name: str = "images", *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Images in any form :meth:`parse` takes -> checked (N, C, H, W) float in [0, 1] on the model's device, in
        ``dtype`` (default: the model's); an error names ``name`` and says what was expected."""
        cfg = self.config
        x = as_image_tensor(images, channels=cfg.channels, size=cfg.image_size, name=name)
        x = check_images(x, channels=cfg.channels, size=cfg.image_size, name=name)
        return x.to(device=self.device, dtype=dtype or self.dtype)

    def _source(self, images: Any, name: str = "images") -> ImageSource:
        """Images in any form :meth:`fit` takes -> an ImageSource: folders and datasets read lazily, the rest checked
        and held on the model's device in its dtype."""
        source = image_source(images, channels=self.config.channels, size=self.config.image_size, name=name)
        if isinstance(source, TensorImages):
            images = source.images.to(device=self.device, dtype=self.dtype)
            # made under torch.inference_mode(): a tensor autograd cannot save for backward, so a copy for training
            return TensorImages(images.clone() if images.is_inference() else images)
        return source

    @torch.no_grad()
    def parse(self, images: Any) -> Latents:
        """The heuristic parse of images (spec §3), with the rendered canvas.

        Args:
            images: (N, C, H, W), (N, H, W, C) or (N, H, W), uint8 or float in [0, 1]; PIL images or a list of them; a
                folder of image files (any form :meth:`fit` takes).
        Returns:
            Latents (ids, locs, present (N, T); canvas (N, C, S, S) in [0, 1]).
        """
        x = to_canvas(self.prepare_images(images), self.config.canvas_size)
        latents = parse(x, self.bank, self.grid, empty_threshold=self.config.empty_threshold)
        latents.canvas = render(self.bank, self.grid, latents.ids, latents.locs, latents.present)
        return latents

    def render(self, ids: torch.Tensor, locs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """The canvas of latents with this model's parts: :func:`render`; hard latents (integer ids) are checked
        first (shapes, ranges), relaxed ones (floating ids, (N, T, B) weights over the parts) for their shapes: an
        InvalidInputError naming them."""
        tensors = {"ids": ids, "locs": locs, "present": present}
        if not all(isinstance(value, torch.Tensor) for value in tensors.values()):
            raise InvalidTypeError(f"ids, locs and present must be torch tensors, got "
                                   f"{ {name: type(value).__name__ for name, value in tensors.items()} }")
        if not ids.is_floating_point():
            Latents(ids, locs, present).check(num_parts=self.config.num_parts, num_steps=self.config.num_steps)
        else:
            # Floating (N, T) ids (part indices made with torch.tensor of floats) read as weights over the bank
            # failed deep inside an einsum: say what floating ids mean.
            steps, cells = tuple(ids.shape[:2]), self.grid.num_cells
            if ids.ndim != 3 or ids.shape[2] != self.config.num_parts or tuple(present.shape) != steps \
                    or tuple(locs.shape) not in (steps, (*steps, cells)):
                raise InvalidInputError(
                    f"floating ids are a relaxed sample, (N, T, B={self.config.num_parts}) weights over the parts, "
                    f"with locs (N, T) or (N, T, L={cells}) and present (N, T); got ids {tuple(ids.shape)} "
                    f"{ids.dtype}, locs {tuple(locs.shape)} and present {tuple(present.shape)}; part indices must be "
                    "an integer tensor (N, T)")
        return render(self.bank, self.grid, ids, locs, present)

    @staticmethod
    def _batches(count: int, batch_size: int | None) -> list[slice]:
        """The slices of ``count`` items, ``batch_size`` at a time (all at once for None)."""
        return _slices(count, count if batch_size is None else check_count(batch_size, "batch_size"))

    def _step_noise(self, count: int, generator: Generators) -> torch.Tensor:
        """The uniform noise of ``count`` latent sequences, (count, T, B + L + 1): one draw per step for z_id's
        Gumbel-max over B parts, z_loc's over L cells and z_is's threshold (:meth:`StepLogits.sample`)."""
        cfg = self.config
        return uniform_noise((cfg.num_steps, cfg.num_parts + self.grid.num_cells + 1), count, generator, self.device)

    @torch.no_grad()
    def encode(self, images: Any, *, sample: bool = False, generator: Generators = None,
               batch_size: int | None = None) -> Latents:
        """Infer latents with the encoder q(z | x), in eval mode (a model in training mode is handed back as it was).

        Computed under ``torch.no_grad()``: the latents, canvas and logits carry no gradient, even from images that
        require one (``model.encoder(x)`` gives the logits with gradients; :meth:`objective` differentiates through a
        relaxed sample).

        Args:
            images: as in :meth:`parse`: (N, C, H, W) or NHWC, uint8 or float in [0, 1]; PIL images; a folder.
            sample: draw z ~ q(z | x) (seeded by ``generator``) instead of taking each distribution's mode.
            generator: one torch.Generator or one per image, for ``sample=True``.
            batch_size: encode this many images at a time, to bound memory; None encodes all at once. The result
                does not depend on it.
        Returns:
            Latents with ids, locs, present (N, T), the canvas (N, C, S, S) and the posterior logits.
        """
        check_flags(sample=sample)
        _check_used(generator, sample, "sample=True", "encode takes each distribution's mode")
        x = self.prepare_images(images)
        batches = self._batches(len(x), batch_size)
        # Drawn for the whole batch up front, so the latents do not depend on batch_size.
        noise = self._step_noise(len(x), generator) if sample else None
        chunks = []
        with evaluating(self):  # BatchNorm's running statistics are not the images' to change
            for chunk in batches:
                logits = self.encoder(x[chunk])
                ids, locs, present = logits.sample(noise[chunk]) if sample else logits.mode()
                canvas = render(self.bank, self.grid, ids, locs, present)
                chunks.append(Latents(ids, locs, present, canvas=canvas, logits=logits))
        return Latents.cat(chunks)

    @torch.no_grad()
    def decode(self, latents: Latents | torch.Tensor, *, sample_pixels: bool = False,
               generator: Generators = None, batch_size: int | None = None) -> torch.Tensor:
        """Decode canvases into images, in eval mode (a model in training mode is handed back as it was).

        Computed under ``torch.no_grad()``: the images carry no gradient, even from a canvas that requires one (to
        differentiate, call ``model.likelihood.mean(model.decoder(canvas))`` in eval mode).

        Args:
            latents: Latents (their canvas is used, or composed from ids/locs/present; a warning says when the
                two disagree, as after an edit in place) or a canvas tensor (N, C, S, S) in [0, 1], e.g. an edited
                one.
            sample_pixels: draw the pixels from p(x | canvas) (seeded by ``generator``) instead of its mean.
            generator: one torch.Generator or one per image, for ``sample_pixels=True``.
            batch_size: decode this many canvases at a time, to bound memory; None decodes them all at once (on
                the CPU, a few MiB of activations at a time). The result depends on it only by float rounding.
        Returns:
            (N, C, H, W) float in [0, 1].
        """
        check_flags(sample_pixels=sample_pixels)
        _check_used(generator, sample_pixels, "sample_pixels=True", "decode returns the mean pixels")
        if isinstance(latents, Latents) and latents.canvas is None:
            latents.check(num_parts=self.config.num_parts, num_steps=self.config.num_steps)
            canvas = render(self.bank, self.grid, latents.ids, latents.locs, latents.present)
        else:
            given = latents.canvas if isinstance(latents, Latents) else latents
            if isinstance(latents, Latents):
                # A canvas of other drawings than the steps (Latents built from one batch's steps and another's
                # canvas) decoded to as many images as the canvas has, with no word: the batch sizes must agree
                count = [tuple(getattr(value, "shape", ()))[:1] for value in (latents.ids, given)]
                if count[0] and count[1] and count[0] != count[1]:
                    raise InvalidInputError(f"latents canvas must hold one canvas per drawing, got {count[1][0]} "
                                            f"canvases for {count[0][0]} drawings (ids {tuple(latents.ids.shape)}, "
                                            f"canvas {tuple(given.shape)})")
            canvas = check_images(given, channels=self.config.channels, size=self.config.canvas_size, name="canvas")
            if isinstance(latents, Latents):
                self._warn_if_edited(latents, canvas)
            canvas = canvas.to(device=self.device, dtype=self.dtype)
        batches = self._batches(len(canvas), batch_size)
        # Drawn for the whole batch up front, so the pixels do not depend on batch_size.
        noise = self._pixel_noise(len(canvas), generator) if sample_pixels else None
        with evaluating(self):
            return torch.cat([self._decode(canvas[chunk], None if noise is None else noise[chunk])
                              for chunk in batches])

    def _warn_if_edited(self, latents: Latents, canvas: torch.Tensor) -> None:
        """Warn when ``canvas`` (``latents``' own, checked) is not that of their steps with this model's parts, at the
        canvas's precision. Every Latents this package returns has the canvas of its steps: one that differs had its
        steps (or canvas) changed in place, or comes from another model, and decoding its canvas would silently drop
        such an edit."""
        try:
            latents.check(num_parts=self.config.num_parts, num_steps=self.config.num_steps)
        except NPDrawError as error:  # steps this model cannot draw (edited out of range, or another model's)
            logger.warning("decode: the latents' ids, locs and present are not steps this model can draw (%s): their "
                           "canvas is decoded as it is", error)
            return
        steps = render(self.bank, self.grid, latents.ids, latents.locs, latents.present)
        # Compared at the lower of the two precisions: a float32 canvas (another copy of the model, or the same
        # weights loaded in float32) decoded by a bfloat16 model is the same canvas, rounded.
        same = torch.equal(steps.to(canvas), canvas) or torch.equal(canvas.to(steps), steps)
        if steps.shape == canvas.shape and not same:
            logger.warning("decode: the latents' canvas is not that of their ids, locs and present with this model's "
                           "parts (changed in place, or drawn by another model?): the canvas is decoded; to decode the "
                           "steps, pass Latents(ids, locs, present) without a canvas")

    def _pixel_noise(self, count: int, generator: Generators) -> torch.Tensor:
        """The uniform noise :meth:`_decode` turns into ``count`` images of sampled pixels."""
        size = self.config.image_size
        return uniform_noise((self.likelihood.noise_channels, size, size), count, generator, self.device)

    def _decode(self, canvas: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Decode a canvas known to be valid (composed by the model): no input scan on the sampling path. With
        ``noise`` (from :meth:`_pixel_noise`) the pixels are sampled, else the likelihood's mean is returned."""
        cfg = self.config
        most = max(1, _DECODE_BYTES // (cfg.decoder_channels * cfg.image_size**2 * canvas.element_size()))
        if canvas.device.type == "cpu" and len(canvas) >= 2 * most:
            # Pieces of most to 2 most - 1 images: the remainder joins the last, never a small piece of its own
            bounds = [*range(0, len(canvas) - most + 1, most), len(canvas)]
            return torch.cat([self._decode(canvas[a:b], None if noise is None else noise[a:b])
                              for a, b in itertools.pairwise(bounds)])
        params = self.decoder(canvas)
        return self.likelihood.mean(params) if noise is None else self.likelihood.sample(params, noise)

    @torch.no_grad()
    def reconstruct(self, images: Any, *, batch_size: int | None = None) -> torch.Tensor:
        """decode(encode(images)): (N, C, H, W) -> (N, C, H, W) float in [0, 1], ``batch_size`` images at a time
        (all at once for None; the result does not depend on it). Like them, without gradients."""
        # The canvas alone: the latents' own, which decode would otherwise check and render again to compare
        return self.decode(self.encode(images, batch_size=batch_size).canvas, batch_size=batch_size)

    @torch.no_grad()
    def sample(self, num_images: int, generator: Generators = None, *, batch_size: int = 256,
               device: torch.device | str | None = None, temperature: float = 1.0, progress: bool = True,
               sample_pixels: bool = False, use_cache: bool = True) -> SampleOutput:
        """Draw images: latents from the prior, T steps each, then the decoder.

        Args:
            num_images: how many images (> 0).
            generator: one torch.Generator (the whole call is seeded), or a list with one per image (image i
                depends on generator i alone, whatever the batching), or None (torch's global RNG).
            batch_size: images drawn at once; memory grows with it.
            device: where the returned tensors go (default: the model's device); the model computes where it is.
            temperature: divides the prior's logits (> 0); below 1 gives more typical drawings.
            progress: show a progress bar over batches.
            sample_pixels: draw pixels from p(x | canvas) instead of returning its mean.
            use_cache: the prior's key/value cache (the same latents in float32; in half precision the two paths
                round differently, and a few draws differ; False is O(T²) and only for checks).
        Returns:
            SampleOutput: images (N, C, H, W) in [0, 1] and the latents.
        """
        num_images = check_count(num_images, "num_images")
        batch_size = check_count(batch_size, "batch_size")
        temperature = check_temperature(temperature)
        check_flags(progress=progress, sample_pixels=sample_pixels, use_cache=use_cache)
        check_generators(generator, num_images)
        device = self.device if device is None else check_device(device)
        self._check_fits_in_memory(num_images, device)
        images, latents = [], []
        with evaluating(self):
            for start in tqdm(range(0, num_images, batch_size), desc="sampling", disable=not progress,
                              unit="batch", leave=False):  # cleared when done, as every other bar is
                count = min(batch_size, num_images - start)
                gens = generator[start:start + count] if isinstance(generator, Sequence) else generator
                out = self._draw(count, gens, temperature, use_cache, sample_pixels)
                images.append(out.images.to(device))
                latents.append(out.latents.to(device))
        return SampleOutput(torch.cat(images), Latents.cat(latents))

    def _check_fits_in_memory(self, num_images: int, device: torch.device) -> None:
        """InvalidInputError before any work when ``num_images`` images and their latents, returned on the CPU,
        would need more than the machine's memory: the call would otherwise run for minutes and be killed."""
        cfg, memory = self.config, physical_memory()
        if device.type != "cpu" or memory is None:
            return
        # float32 images (the model's dtype or wider), int64 ids and locs, the canvases; twice: the batches are held
        # until torch.cat has copied them into the returned tensors (a peak of 2.4 times the output was measured)
        per_image = 2 * (4 * cfg.channels * (cfg.image_size**2 + cfg.canvas_size**2) + 20 * cfg.num_steps)
        if num_images * per_image > memory:
            raise InvalidInputError(
                f"num_images={num_images:,} images of {cfg.channels}x{cfg.image_size}x{cfg.image_size} with their "
                f"latents take {num_images * per_image / 2**30:,.0f} GiB while they are gathered (twice what is "
                f"returned), more than this machine's {memory / 2**30:,.0f} GiB of memory: draw them in several "
                "calls and save each")

    def _draw(self, count: int, generator: Generators, temperature: float, use_cache: bool, sample_pixels: bool,
              prefix: Latents | None = None) -> SampleOutput:
        """One batch of :meth:`sample` (or :meth:`complete`, with a prefix), on the model's device."""
        noise = self._step_noise(count, generator)
        pixel_noise = self._pixel_noise(count, generator) if sample_pixels else None

        def draw(rows: slice) -> SampleOutput:
            with torch.no_grad():  # grad mode is per thread
                drawn = self.prior.sample(self.bank, noise[rows], temperature=temperature, use_cache=use_cache,
                                          prefix=None if prefix is None else prefix[rows])
                return SampleOutput(self._decode(drawn.canvas, None if pixel_noise is None else pixel_noise[rows]),
                                    drawn)

        if self.device.type != "cpu" or autocast_dtype("cpu") is not None:
            return draw(slice(None))  # autocast's state does not follow work into other threads
        # On the CPU each piece of the batch runs on one thread of its own, with no intra-op threads: the prior's
        # steps are many small kernels, which split over threads cost a barrier each, and a barrier waits for the
        # slowest thread, so intra-op threads on a shared core make sampling several times slower
        # (bench_sampling.py). Every image depends on its own noise alone: the pieces draw the whole batch's latents, and
        # its images up to the float rounding of a convolution over another batch size.
        with _one_intra_op_thread() as threads:
            pieces = max(1, min(threads, count // _PIECE))
            if pieces == 1:
                return draw(slice(None))
            bounds = [round(i * count / pieces) for i in range(pieces + 1)]
            outs = list(_workers().map(draw, [slice(a, b) for a, b in itertools.pairwise(bounds)]))
        return SampleOutput(torch.cat([out.images for out in outs]), Latents.cat([out.latents for out in outs]))

    @torch.no_grad()
    def complete(self, latents: Latents, steps: int, generator: Generators = None, *, temperature: float = 1.0,
                 sample_pixels: bool = False, use_cache: bool = True) -> SampleOutput:
        """Finish drawings: keep their first ``steps`` steps and let the prior draw the rest, then decode.

        To complete a partial image, parse it: a parse's step t draws grid cell t (row-major; the encoder's mostly
        does too), so the first ``steps`` steps are the top rows of cells (on MNIST's 6 x 6 grid, steps=18 keeps
        the top half). The prior draws in that order, so it finishes a drawing from its top, not a hole in its
        middle.

        Args:
            latents: N drawings (from :meth:`parse`, :meth:`encode` or :meth:`sample`), T steps each.
            steps: k in [0, T], the steps kept; k = T decodes the drawings as they are, k = 0 is :meth:`sample`.
            generator: one torch.Generator or one per drawing (the completion of drawing i then depends on
                generator i alone); None uses torch's global RNG.
            temperature, sample_pixels, use_cache: as in :meth:`sample`.
        Returns:
            SampleOutput: images (N, C, H, W) in [0, 1] and latents whose first ``steps`` steps are the given ones.

        Example:
            >>> top = model.parse(images)  # doctest: +SKIP
            >>> out = model.complete(top, steps=18, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        """
        if not isinstance(latents, Latents):
            raise InvalidTypeError(f"latents must be Latents, got {type(latents).__name__}")
        # (N, k) steps of this model's parts and cells: one drawing indexed out of a batch (latents[0]) was an
        # IndexError, and ids out of range surfaced from the prior as a "prefix" error
        given = latents.check(num_parts=self.config.num_parts, num_steps=self.config.num_steps)
        if not len(latents):  # as sample(0) and an empty batch of images are refused, not drawn as nothing
            raise InvalidInputError("latents must hold at least one drawing, got an empty batch")
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) \
                or not 0 <= steps <= self.config.num_steps:
            raise InvalidInputError(f"steps must be an int in [0, {self.config.num_steps}], got {steps!r}")
        steps = int(steps)
        if steps > given:
            raise InvalidInputError(f"steps must be at most the latents' {given} steps, got {steps}")
        temperature = check_temperature(temperature)
        check_flags(sample_pixels=sample_pixels, use_cache=use_cache)
        prefix = Latents(latents.ids[:, :steps], latents.locs[:, :steps], latents.present[:, :steps])
        with evaluating(self):
            return self._draw(len(latents), generator, temperature, use_cache, sample_pixels, prefix.to(self.device))

    def objective(self, x: torch.Tensor, parse: Latents, *, tau: float, substitution: float = 0.0,
                  hard: bool = False, decode_parse: bool = False) -> Terms:
        """One stochastic evaluation of the stage-2 objective (spec §7), drawn with torch's global RNG: the
        posterior's relaxed sample rendered and decoded, its KL against the prior on its own canvas history, and the
        posterior's cross-entropy towards the parse; with ``decode_parse``, also the decoder's loss on the parse's
        canvas.

        Args:
            x: (N, C, H, W) target images in [0, 1] (binarised for a Bernoulli likelihood).
            parse: the images' parsed latents, (N, T) each.
            tau: the Gumbel-softmax temperature (> 0).
            substitution: the chance that an image's sample is replaced by its parse (the reference code's schedule).
            hard: sample z_id one-hot: the terms are then a one-sample estimate of the true negative ELBO.
            decode_parse: also return −log p(x | the parse's canvas) (``Terms.parse_reconstruction``), whose
                gradient reaches the decoder only.
        Returns:
            :class:`np_draw.elbo.Terms`, (N,) each in nats.
        """
        q = self.encoder(x)
        z = relaxed_sample(q, tau, hard)
        if substitution > 0:
            z = substitute(z, parse, torch.rand(x.shape[0], device=x.device) < substitution)
        parts, locs = _drawn_parts(self.bank, self.grid, z.ids, z.locs, z.present)
        reconstruction = -self.likelihood.log_prob(self.decoder(self.grid.compose(parts, locs)), x)
        from_parse = None
        if decode_parse:
            # A batch of its own: decoded with the sample's canvases, BatchNorm's batch statistics would mix the two.
            with torch.no_grad():  # hard latents: nothing upstream of the parse's canvas is trained by it
                canvas = render(self.bank, self.grid, parse.ids, parse.locs, parse.present)
            from_parse = -self.likelihood.log_prob(self.decoder(canvas), x)
        # The prior's input, each part with its footprint (z_is over its box), drawn in the prior's own tiles:
        # cutting T canvases per image into them took a tenth of a step
        footprints = z.present.to(parts)[:, :, None, None, None].expand(-1, -1, 1, *parts.shape[-2:])
        p = self.prior.of_tiles(self.grid.history(torch.cat([parts, footprints], 2), locs, self.prior.embed.patch))
        return Terms(reconstruction, kl_per_step(q, p, z.present).sum(1), -q.log_prob(parse), from_parse)

    def log_weights(self, x: torch.Tensor, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x | z_s) + log p(z_s) − log q(z_s | x) for S posterior draws per image: the importance weights of
        the bound on −log p(x) (:func:`np_draw.metrics.nll`). Every term is an exact probability of discrete latents.
        Call it in eval mode under ``torch.no_grad()``, as ``nll`` does; the draws' noise is float32 whatever the
        model's dtype, as in sampling.

        Args:
            x: (N, C, H, W) targets in [0, 1] as the likelihood scores them (binary for a Bernoulli model; uint8 is
                scaled), moved to the model's device and dtype.
            num_samples: S.
            generator: a CPU torch.Generator seeding the posterior draws.
        Returns:
            (N, S) log importance weights in nats.
        Raises:
            InvalidInputError: a bad shape or range of ``x`` (grey targets for a Bernoulli model, whose cross-entropy
            is no log-probability: binarise them, as ``nll`` does), or ``num_samples`` not a positive int.
        """
        num_samples = check_count(num_samples, "num_samples")
        x = check_images(x, channels=self.config.channels, size=self.config.image_size, name="x")
        x = x.to(device=self.device, dtype=self.dtype)
        grey = int(((x != 0) & (x != 1)).sum()) if isinstance(self.likelihood, Bernoulli) else 0
        if grey:
            raise InvalidInputError(f"x must be binary (0 and 1) for this model's Bernoulli likelihood, got "
                                    f"{grey} values strictly between 0 and 1: binarise them first, as "
                                    "np_draw.metrics.nll does")
        q = self.encoder(x)[torch.arange(x.shape[0], device=x.device).repeat_interleave(num_samples)]
        z = Latents(*q.sample(self._step_noise(x.shape[0] * num_samples, generator)))
        log_px = self.likelihood.log_prob(self.decoder(render(self.bank, self.grid, z.ids, z.locs, z.present)),
                                          repeat(x, "n ... -> (n s) ...", s=num_samples))
        log_w = log_px + self.prior.log_prob(z, self.bank) - q.log_prob(z)
        return rearrange(log_w, "(n s) -> n s", s=num_samples)

    def fit(self, images: Any, config: FitConfig | None = None, *, output_dir: str | Path | None = None,
            resume: bool = False, progress: bool = True, callback: Callable[[int, FitHistory], None] | None = None,
            validation: Any = None, **overrides: Any) -> FitHistory:
        """Train on ``images``: part bank, parse, prior pretraining, then encoder and decoder (spec §2, §5, §7).

        On the CPU, the C allocator keeps freed memory for reuse while fit runs
        (:func:`np_draw.memory.keeping_freed_memory`: with glibc's defaults each step's large activations are fresh
        pages, and a CelebA step took 1.6x as long), which raises the run's peak memory.

        fit trains with autograd also when called inside ``torch.no_grad()`` or ``torch.inference_mode()``. Each stage
        trains its modules whatever their ``requires_grad`` (``fit_prior=False`` leaves the prior as it is), and the
        flags are handed back as they were; a run stopped by an error or a KeyboardInterrupt keeps the weights it
        reached and hands every module back in the mode it was in.

        Args:
            images: a tensor or array (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 or float in [0, 1]; PIL
                images; a torch Dataset or DataLoader of images (or (image, label) pairs), a Hugging Face
                ``datasets.Dataset`` (its "image" column), or a folder of image files, searched recursively,
                centre-cropped and resized to the model's size; or a :class:`np_draw.images.ImageSource`. From one
                image up to fine-tune; from scratch, enough for the part bank's ``num_parts`` non-empty patches.
                Folders and map-style datasets are streamed: read a batch at a time, never all in memory.
            config: a :class:`np_draw.training.FitConfig` (defaults when None).
            output_dir: where checkpoints are written (``output_dir/checkpoints``); None keeps none.
            resume: continue exactly from the latest checkpoint in ``output_dir``; with ``config`` None the
                checkpoint's own config is used (``overrides`` may then grow ``epochs`` or ``steps``).
            progress: progress bars.
            callback: called as ``callback(epoch, history)`` after each epoch of the last stage, ``epoch`` counted
                from 0 (an index into ``history.val_bound``).
            validation: held-out images for model selection, in any form ``images`` takes; None holds out
                ``config.val_fraction`` of ``images`` instead.
            **overrides: FitConfig fields to change, e.g. ``epochs=5``.
        Returns:
            :class:`np_draw.training.FitHistory`.

        Example:
            >>> model = NPDraw(NPDrawConfig.preset("mnist"))
            >>> history = model.fit(images, epochs=10)  # doctest: +SKIP
        """
        if config is not None and not isinstance(config, FitConfig):
            raise InvalidTypeError(f"config must be a FitConfig (or None), got {type(config).__name__}; pass "
                                   "FitConfig(**fields), or the fields themselves as keyword arguments")
        check_flags(resume=resume, progress=progress)
        if callback is not None and not callable(callback):
            raise InvalidTypeError(f"callback must be callable as callback(epoch, history), got "
                                   f"{type(callback).__name__}")
        output_dir = None if output_dir is None else Path(output_dir).expanduser()
        checkpoint = load_checkpoint(output_dir / "checkpoints") if resume and output_dir is not None else None
        if config is None and checkpoint is not None:
            # The run being resumed says what it was: a model half-trained from scratch has a fitted bank too.
            config = FitConfig(**checkpoint[1]["config"])
        elif config is None:
            config = FitConfig.finetune() if self.is_fitted else FitConfig()
            logger.info("%s", "fine-tuning a trained model (FitConfig.finetune())" if self.is_fitted
                        else "training a new model from scratch (FitConfig())")
        config = config.replace(**overrides)
        # Outside torch.inference_mode(), which a caller's block may have on: its tensors cannot be trained on, and a
        # copy made inside it would be one too (fit itself turns autograd on)
        with torch.inference_mode(False):
            source = self._source(images)
            held_out = None if validation is None else self._source(validation, "validation")
        history = fit(self, source, config, output_dir=output_dir, resume=resume, progress=progress,
                      callback=callback, validation=held_out)
        data = self.card_licence.get("data_license")
        if data is not None and not data.startswith(_REFITTED):
            # The weights now come from these images too: the card must not name only the data they started from.
            self.card_licence = {**self.card_licence, "data_license": _REFITTED + data}
        return history

    def save_pretrained(self, folder: str | Path, card: Mapping[str, Any] | None = None, *,
                        config: NPDrawConfig | None = None, model_card_kwargs: Mapping[str, Any] | None = None,
                        push_to_hub: bool = False, repo_id: str | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` (bank, prior, encoder, decoder) and a ``README.md`` model
        card, all or none: a save that fails part way (a full disk) leaves the files the folder held.

        Args:
            folder: the output folder, created if needed.
            card: facts for the model card: ``dataset``, ``metrics`` ({name: value}), ``notes``, ``license`` (Hub
                license id; by default the licence terms of the card the weights were loaded from, so that a model
                fine-tuned from CelebA's weights stays non-commercial, else "mit"), ``repo_id``; see
                :func:`np_draw.hub.model_card`.
            config, model_card_kwargs: what ``huggingface_hub.ModelHubMixin.push_to_hub`` passes: None or this
                model's config, and ``{"card": ...}`` in place of ``card``.
            push_to_hub, repo_id: not supported (an InvalidInputError): :meth:`push_to_hub` checks the repo id and
                the card before anything is written or sent.
        Returns:
            The folder.
        Raises:
            UnwritablePathError: the folder cannot be created or written. InvalidInputError, InvalidTypeError: a bad
            ``card`` (see :func:`np_draw.hub.check_card`). InvalidInputError: ``model.config``, changed since the
            model was built, is no longer valid; ConfigMismatchError: or no longer fits the weights (nothing is
            written).

        Example:
            >>> folder = model.save_pretrained("np-draw-mnist", card={"dataset": "MNIST"})  # doctest: +SKIP
        """
        folder = check_path(folder, "folder")
        if push_to_hub or repo_id is not None:
            raise InvalidInputError("save_pretrained(push_to_hub=True) is not supported: call "
                                    "model.push_to_hub(repo_id, card=...), which checks the repo id and the card "
                                    "before anything is written or sent")
        if config is not None and config != self.config:
            raise InvalidInputError(f"save_pretrained(config=...) must be None or the model's own config; the model "
                                    f"is saved with its config, got {config!r}")
        if model_card_kwargs is not None:
            if card is not None or set(model_card_kwargs) - {"card"}:
                raise InvalidInputError(f"model_card_kwargs must be {{'card': ...}} and not given with card, got "
                                        f"{dict(model_card_kwargs)!r}")
            card = model_card_kwargs.get("card")
        model_card = self.generate_model_card(hub.check_card(card))  # before anything on disk changes
        # model.config is a dataclass a caller may have changed since the model was built: a folder from_pretrained
        # would refuse is not written (over a good one, maybe)
        try:
            saved = NPDrawConfig.from_dict(self.config.to_dict())
        except (InvalidInputError, InvalidTypeError) as error:
            raise InvalidInputError(f"cannot save the model: its config, changed since the model was built, is no "
                                    f"longer valid: {error}") from error
        with torch.device("meta"):
            skeleton = NPDraw(saved)
        # The shapes only: a subclass may hold more weights than NPDraw
        check_weights(skeleton.state_dict(), {key: (list(value.shape), value.is_floating_point())
                                              for key, value in self.state_dict().items()},
                      "cannot save the model: its config, changed since the model was built, no longer fits its "
                      "weights", "the model", strict=False)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UnwritablePathError(f"cannot create the output folder {str(folder)!r}: {error.strerror}") from error
        try:
            write_model_files(saved, self.state_dict(), model_card, folder)
        except OSError as error:
            if isinstance(error, NPDrawError):
                raise
            raise UnwritablePathError(f"cannot write the model into {str(folder)!r}: {error}") from error
        return folder

    def generate_model_card(self, card: Mapping[str, Any] | None = None) -> ModelCard:
        """ModelHubMixin's hook for ``README.md``: :func:`np_draw.hub.model_card` of this model and ``card``, with
        the licence terms of the card the weights were loaded from where ``card`` gives none (weights derived from
        CelebA's stay non-commercial)."""
        inherited = self.card_licence
        if inherited.get("license", "mit") != "mit" and "license" not in (card or {}):
            logger.info("the model card keeps the licence of the weights this model was loaded from: %s",
                        inherited.get("license_name", inherited.get("license")))
        return hub.model_card(self.config, hub.with_licence(card, inherited))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool = False,
                        force_download: bool = False, token: str | bool | None = None,
                        device: torch.device | str | None = None,
                        dtype: torch.dtype | str | None = None, strict: bool = True) -> NPDraw:
        """Load a model: a pretrained name (before a folder of that name, unless given as a Path or "./name"), a
        local folder, or a Hub repo.

        Downloaded and bundled pretrained weights are checked against the sha256 and size in the weights manifest
        before they are read; only JSON, safetensors and the model card's YAML (its licence terms) are read. A
        folder whose files a save replaces while they are read (another process's :meth:`save_pretrained`) is read
        again, so that the config and the weights come from the same save.

        Args:
            name_or_path: a folder written by :meth:`save_pretrained`; a pretrained name ("mnist", "omniglot",
                "cifar10", "celeba"); or a Hub repo id "owner/name", optionally "owner/name@revision".
            revision: a branch, tag or commit on the Hub; for a pretrained name, None is the manifest's pinned
                commit.
            cache_dir: the Hugging Face cache folder (default ``HF_HUB_CACHE``).
            local_files_only: use only the cache, never the network.
            force_download: download again even when cached.
            token: a Hub token for a private or gated repo; None uses ``HF_TOKEN`` or the saved login.
            device, dtype: where to move the model after loading it on the CPU (a dtype or its name, e.g.
                "bfloat16"); None keeps float32 whatever the weights are stored in (as transformers does), "auto"
                takes the dtype the part bank is stored in
                (a model saved in float16 comes back in float16; weights stored in another dtype are converted, with
                a warning).
            strict: a missing or unexpected weight is an error; False loads what matches and logs the rest.
        Returns:
            The model, in eval mode.
        Raises:
            UnknownModelError: an unknown name (the message lists the known ones), or a repo id the Hub's rules
            for names refuse. ConfigMismatchError: weights that do not fit their config. InvalidInputError: an
            invalid config.json, or both ``local_files_only`` and ``force_download``.
            WeightsUnavailableError: not published yet, or neither cached nor downloadable: the Hub cannot be
            reached, or it refused (a gated or private repo, a token without access; the message says its answer).
            UnwritablePathError: the Hugging Face cache cannot be written.
            CorruptWeightsError: a file is truncated, not safetensors, or does not match the manifest, or the
            folder's files were replaced while they were read five times over. (All from :mod:`np_draw.errors`.)

        Example:
            >>> model = NPDraw.from_pretrained("mnist", device="cuda")  # doctest: +SKIP
        """
        # Anything else would be taken for its truth value: strict="no" loaded strictly (resolve_pretrained checks
        # the other flags)
        check_flags(strict=strict)
        device = None if device is None else check_device(device)
        dtype = None if dtype is None else check_dtype(dtype, auto=True)
        # The mixin would ask the Hub for anything that is not a folder: a pretrained name first becomes its
        # verified folder (bundled or downloaded), and the mixin loads that folder with its checked config.
        folder = hub.resolve_pretrained(name_or_path, revision=revision, cache_dir=cache_dir,
                                        local_files_only=local_files_only, force_download=force_download,
                                        token=token)
        # A save over the folder while it is read (another process's save_pretrained) replaces its files one by one:
        # the config read before it with the weights after it, or safetensors' header of one file with torch's
        # mapping of the other, is no model. A load whose files changed between reading the config and opening the
        # weights is done again.
        for attempt in itertools.count(1):
            before, opened = folder_state(folder), []
            try:
                model = super().from_pretrained(folder, config=load_config(folder), device=device, dtype=dtype,
                                                strict=strict, opened=functools.partial(_record, opened, folder))
            except (NPDrawError, RuntimeError):
                if folder_state(folder) == before:
                    raise
            else:
                if opened == [before]:
                    return model
            if attempt == _LOAD_ATTEMPTS:
                raise CorruptWeightsError(f"the files of {str(folder)!r} changed while they were read, {attempt} "
                                          "times (another process saving into the folder?): load it once the save "
                                          "is done")

    @classmethod
    def _from_pretrained(cls, *, model_id: str, config: NPDrawConfig, device: torch.device | str | None = None,
                         dtype: torch.dtype | str | None = None, strict: bool = True,
                         opened: Callable[[], object] | None = None, **hub_options: Any) -> NPDraw:
        """ModelHubMixin's hook for loading: the folder ``model_id``, which :meth:`from_pretrained` has already
        resolved with the ``hub_options`` (revision, token...; proxies too on huggingface_hub < 1.0); ``opened`` is
        :func:`np_draw.model_files.load_weights`'."""
        auto = isinstance(dtype, str)
        model = load_weights(lambda: cls(config), model_id, strict=strict, stored_dtype=auto,
                             lists={"prior.blocks": config.prior.num_layers}, opened=opened)
        # What saving it again must keep: the terms its weights (and their training data) came with.
        model.card_licence = hub.card_licence(model_id)
        # None is float32 also under torch.set_default_dtype(torch.float64), which the model was built in
        model = model.to(device=device, dtype=None if auto else dtype or torch.float32).eval()
        if model.device.type == "cpu" and (slow := slow_on_cpu(model.dtype)):
            logger.warning("%s on the CPU: half precision is for GPUs; %s (dtype=None keeps float32)",
                           str(model.dtype).removeprefix("torch."), slow)
        return model

    def push_to_hub(self, repo_id: str, *, revision: str | None = None, private: bool = False,
                    token: str | None = None, commit_message: str = "Upload NP-DRAW model",
                    card: Mapping[str, Any] | None = None) -> str:
        """Upload the model (config, weights and model card) to the Hugging Face Hub repo ``repo_id``.

        Args:
            repo_id: "owner/name"; the repo is created if it does not exist.
            revision: the branch to commit to (created if needed); None for the default branch.
            private: create the repo private; an existing public repo is refused (it would stay public).
            token: a Hub token; None uses the saved login or ``HF_TOKEN``.
            commit_message: the commit's message.
            card: facts for the model card, as in :meth:`save_pretrained`; ``repo_id`` (the name its loading
                example gives) defaults to this one, with ``@revision`` when a branch is given.
        Returns:
            The commit id, to load exactly this upload with ``from_pretrained(repo_id, revision=...)``.
        Raises:
            InvalidInputError: ``repo_id`` is not "owner/name" or breaks the Hub's rules for names (no ".." or
            "--", no "-" or "." at either end), a bad ``card``, or ``private`` for a public repo. InvalidTypeError:
            ``private`` is not a bool, or a field of ``card`` has the wrong type.
            huggingface_hub.errors.HfHubHTTPError: the Hub refused. UnwritablePathError: it could not be reached
            (offline, a wrong HF_ENDPOINT) or the upload broke off.

        Example:
            >>> commit = model.push_to_hub("me/np-draw-mnist", card={"dataset": "MNIST"})  # doctest: +SKIP
        """
        # Anything else would be taken for its truth value: private="no" created a private repo, and a public
        # one's refusal said private=True
        check_flags(private=private)
        facts = hub.check_card(card, repo_id=repo_id)
        if revision is not None and "repo_id" not in (card or {}):
            # The card's loading example, read on this branch, must load this branch's weights, not the default's
            facts["repo_id"] = f"{repo_id}@{revision}"
        try:
            api = HfApi(token=token)
            if private and hub.is_public_repo(api, repo_id):
                # create_repo leaves a repo that exists as it is: the weights would be published
                raise InvalidInputError(f"private=True, but the Hub repo {repo_id!r} exists and is public: nothing was "
                                        "uploaded. Make it private on its settings page first, or push with "
                                        "private=False")
            if revision is not None:
                # The mixin commits to a branch but does not create it, and a branch needs its repo first.
                api.create_repo(repo_id, private=private, exist_ok=True)
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            commit = super().push_to_hub(repo_id, branch=revision, private=private, token=token,
                                         commit_message=commit_message, model_card_kwargs={"card": facts})
        except HfHubHTTPError:  # the Hub answered and refused: its own error says why
            raise
        except hub.TRANSPORT_ERRORS as error:
            raise UnwritablePathError(f"could not upload to the Hub repo {repo_id!r} at {constants.ENDPOINT}: "
                                      f"{hub.first_line(error)}") from error
        return commit.oid
