"""``fit``: the four stages of training (spec §2, §3, §5, §7), checkpointed and exactly resumable.

1. part bank (k-means), 2. parse, 3. prior pretraining by teacher forcing (best validation epoch kept),
4. the VAE (encoder and decoder) with the prior frozen. All randomness comes from torch's global RNG seeded by the
config and from one data-order generator; both are saved in every checkpoint with the epoch's data order, so a run
killed at any point and resumed ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import itertools
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .bank import PartBank
from .canvas import Grid
from .checkpoint import (
    has_checkpoint,
    load_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    save_checkpoint,
)
from .config import NPDrawConfig, python_values
from .elbo import Terms, gumbel_temperature, substitution_probability
from .errors import (
    InvalidInputError,
    InvalidTypeError,
    TrainingDivergedError,
    UnwritablePathError,
    check_count,
)
from .images import ImageSource, TensorImages, to_canvas
from .latents import Latents
from .memory import keeping_freed_memory
from .model_files import check_weights
from .networks import autocast_dtype, evaluating, slow_on_cpu
from .parsing import parse
from .prior import Prior

logger = logging.getLogger(__name__)


class Trainable(Protocol):
    """What training needs of a model; :class:`np_draw.NPDraw` is one. Written here, not imported, so that the
    model (whose ``fit`` calls this module) and its training do not import each other."""

    config: NPDrawConfig
    grid: Grid
    bank: PartBank
    prior: Prior
    encoder: torch.nn.Module  # q(z | x): images -> StepLogits
    decoder: torch.nn.Module  # p(x | canvas): canvases -> the likelihood's parameters

    @property
    def device(self) -> torch.device:
        """Where the model's tensors are."""

    @property
    def dtype(self) -> torch.dtype:
        """The model's floating dtype."""

    @property
    def is_fitted(self) -> bool:
        """Whether the part bank is fitted."""

    def objective(self, x: torch.Tensor, parse: Latents, *, tau: float, substitution: float = 0.0,
                  hard: bool = False, decode_parse: bool = False) -> Terms:
        """The stage-2 terms of images ``x`` and their parses (:meth:`np_draw.NPDraw.objective`)."""

    def state_dict(self, /) -> dict[str, Any]:
        """The weights, for checkpoints."""

    def load_state_dict(self, state_dict: dict[str, Any], /) -> Any:
        """Put back weights from a checkpoint."""

    def eval(self) -> Any:
        """Switch to evaluation mode."""

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The trainable tensors."""

    def modules(self) -> Iterator[torch.nn.Module]:
        """The model and its submodules."""


@torch.no_grad()
def evaluate_prior(prior: Prior, bank: PartBank, latents: Latents, batch_size: int = 512) -> float:
    """Mean −log p(z) in nats per sequence over ``latents``, in eval mode (no dropout)."""
    if len(latents) == 0:
        raise InvalidInputError("evaluate_prior needs at least one latent sequence, got none")
    with evaluating(prior):
        total = sum(-prior.log_prob(latents[start:start + batch_size], bank).sum().item()
                    for start in range(0, len(latents), batch_size))
    return total / len(latents)


DEFAULT_PRIOR_EPOCHS = 20  # the paper: 200
DEFAULT_EPOCHS = 10
# The encoder/decoder steps below which a model trained from scratch draws blobs (the low-data curve of
# docs/results.md trained 500, after 1,500 of the prior, and drew digits from 600 images)
_FEW_STEPS = 500


@dataclass
class FitConfig:
    """Hyper-parameters of :func:`fit` (paper and reference code unless said otherwise).

    ``FitConfig()`` trains a new model from scratch; :meth:`finetune` gives the defaults for adapting a trained one.
    Each trained stage runs for a number of epochs (passes over the training images) or, when ``prior_steps`` or
    ``steps`` is given, that many optimizer steps in rounds of ``eval_every`` steps, each round a fresh shuffle of
    the images repeated as often as needed: on a few hundred images an epoch is a handful of steps.
    """

    seed: int = 0
    val_fraction: float = 0.1  # held out for model selection and the validation bound
    fit_bank: bool = True
    fit_prior: bool = True
    prior_epochs: int | None = None  # None: 20 (paper: 200), or prior_steps when given
    prior_steps: int | None = None
    prior_batch_size: int = 64
    prior_lr: float = 1e-4
    epochs: int | None = None  # stage 4 (VAE); None: 10, or steps when given
    steps: int | None = None
    eval_every: int = 50  # optimizer steps per round when a stage is measured in steps
    max_passes: float | None = None  # a budget in steps is cut to this many passes over the training images
    batch_size: int = 150
    encoder_lr: float = 1e-3
    decoder_lr: float = 1e-4
    # The learning rate of the encoder's per-step z_loc bias (Encoder.location_bias). A fine-tune (3e-2 there)
    # must move these logit offsets by several units in a few hundred steps, which Adam at the weights' rate (about
    # lr per step) cannot do; training from scratch has thousands of steps and keeps the encoder's rate.
    location_lr: float = 1e-3
    # Step k (from 1) of each stage runs at min(1, k / warmup_steps) of the learning rates: Adam's first steps move
    # every weight by about the learning rate whatever its gradient, which a trained model pays for.
    warmup_steps: int = 0
    # On fewer training images than this, the prior's and the decoder's learning rates (and parse_canvas_weight)
    # are scaled by images / full_rate_images: a fine-tune on ten images must move a pretrained model less than one
    # on a thousand (the decoder is what draws worse samples after a few steps on few images). The encoder's rate
    # is scaled by 10 x images / full_rate_images, full from a tenth of it on (trained at full rate on nine images,
    # it reconstructed new ones worse; on a hundred, lower rates cost bound and reconstructions). Images: those
    # trained on, after the held-out share. None: no scaling.
    full_rate_images: int | None = None
    parse_weight: float | None = None  # None: 50 for grey, 500 for colour data
    substitution_rate: float | None = None  # None: 0.005 for grey, 0.01 for colour data
    substitution_start: float = 1.0  # the substitution probability at the first epoch (reference code: 1)
    # Weight of the decoder's loss on each image's parse canvas, added to the loss: the prior draws canvases like
    # the parses it learned, which a decoder trained only on the encoder's canvases draws blurred (0: the paper).
    # Scaled like the decoder's learning rate on few images (full_rate_images).
    parse_canvas_weight: float = 0.0
    tau_start: float = 1.0  # the Gumbel temperature at the first epoch (reference code: 1)
    tau_decay: float = 0.0139
    tau_min: float = 0.5
    freeze_batchnorm: bool = False  # keep BatchNorm's running statistics: small batches estimate them badly
    patience: int | None = None  # stage 4: stop after this many rounds without a better validation bound
    checkpoint_every: int = 200  # optimizer steps between checkpoints (and one at the end of every epoch)
    bank_images: int | None = 10_000  # the part bank is fitted on a seeded sample of this many images; None: all
    mixed_precision: bool = False  # bf16 autocast, CUDA only

    def __post_init__(self) -> None:
        python_values(self, flags=("fit_bank", "fit_prior", "freeze_batchnorm", "mixed_precision"))

        def given(*names: str) -> list[str]:
            return [name for name in names if getattr(self, name) is not None]

        for name in ("seed", "checkpoint_every", "warmup_steps",  # 0 epochs or steps skip a stage
                     *given("prior_epochs", "epochs", "prior_steps", "steps")):
            check_count(getattr(self, name), name, least=0)
        # Room below torch's 2**64 for the seeds fit derives (seed + 1, seed + rank): beyond it fit failed as it began
        if self.seed >= 2**63:
            raise InvalidInputError(f"seed must be an int in [0, 2**63), got {self.seed!r}")
        for epochs, steps in (("prior_epochs", "prior_steps"), ("epochs", "steps")):
            if getattr(self, epochs) is not None and getattr(self, steps) is not None:
                raise InvalidInputError(f"give {epochs} or {steps}, not both; got {epochs}={getattr(self, epochs)!r} "
                                        f"and {steps}={getattr(self, steps)!r}")
        for name in ("prior_batch_size", "batch_size", "eval_every",
                     *given("patience", "bank_images", "full_rate_images")):
            check_count(getattr(self, name), name)
        if self.fit_bank and not self.fit_prior:
            raise InvalidInputError("fit_bank=True with fit_prior=False: a refitted bank changes what every part id "
                                    "means, so the prior must be trained on the new parses (fit_prior=True)")

        def number(name: str) -> float:  # NaN for what is not a number, so that the range checks refuse it
            value = getattr(self, name)
            return math.nan if isinstance(value, bool) or not isinstance(value, (int, float)) else value

        for name in ("prior_lr", "encoder_lr", "decoder_lr", "location_lr", "tau_decay", "parse_canvas_weight",
                     *given("parse_weight", "substitution_rate", "max_passes")):
            value, positive = number(name), name.endswith("_lr") or name == "max_passes"
            if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
                raise InvalidInputError(f"{name} must be a {'positive' if positive else 'non-negative'} finite "
                                        f"number, got {getattr(self, name)!r}")
        if not 0.0 <= number("val_fraction") < 1.0:
            raise InvalidInputError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        for name in ("tau_min", "tau_start"):
            if not 0.0 < number(name) <= 1.0:
                raise InvalidInputError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        if self.tau_min > self.tau_start:
            raise InvalidInputError(f"tau_min must be at most tau_start (the temperature falls from tau_start to "
                                    f"tau_min), got tau_min={self.tau_min!r}, tau_start={self.tau_start!r}")
        if not 0.0 <= number("substitution_start") <= 1.0:
            raise InvalidInputError(f"substitution_start must be in [0, 1], got {self.substitution_start!r}")

    @classmethod
    def finetune(cls, **overrides: Any) -> FitConfig:
        """The defaults for adapting a trained model to new images, chosen by measurement (docs/training.md,
        benchmarks/bench_finetune.py); ``overrides`` change any field.

        The part bank is kept (refitting it would change what every latent id means); the prior learns the new
        parses for a few hundred steps; the encoder and decoder train in steps, not epochs, at the temperature
        where a pretrained run ends, with the parse term and substitution that only a new encoder needs turned
        down, the decoder also trained on the parses' canvases (what the prior draws), BatchNorm's statistics
        frozen, the prior's and decoder's learning rates scaled down on fewer than 1,000 training images (the
        encoder's on fewer than 100), and the best validation round kept (the starting weights included, and the
        model as given when the retrained prior scores worse with every round, so fine-tuning never leaves the
        held-out bound worse than it found it).
        """
        return cls(**FINETUNE).replace(**overrides)

    def replace(self, **changes: Any) -> FitConfig:
        """A copy with ``changes``; giving a stage's epochs drops its steps and the other way round, so
        ``FitConfig.finetune().replace(epochs=3)`` trains 3 epochs rather than refusing two budgets."""
        for epochs, steps in (("prior_epochs", "prior_steps"), ("epochs", "steps")):
            given = [name for name in (epochs, steps) if changes.get(name) is not None]
            if len(given) == 1:
                changes.setdefault(steps if given[0] == epochs else epochs, None)
        fields = [field.name for field in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise InvalidInputError(f"unknown FitConfig fields {unknown}; the fields are {fields}")
        return dataclasses.replace(self, **changes)


# FitConfig.finetune's defaults; benchmarks/bench_finetune.py and docs/training.md say how they were chosen.
FINETUNE: dict[str, Any] = {
    "fit_bank": False, "prior_steps": 300, "prior_lr": 1e-4, "prior_batch_size": 32, "steps": 600, "batch_size": 32,
    "encoder_lr": 3e-4, "location_lr": 3e-2, "decoder_lr": 1e-3, "parse_weight": 5.0, "substitution_start": 0.0,
    "parse_canvas_weight": 1.0,
    "tau_start": 0.5, "tau_min": 0.5, "freeze_batchnorm": True, "patience": 4, "max_passes": 20, "warmup_steps": 20,
    "full_rate_images": 1000,
}


@dataclass
class FitHistory:
    """Per-epoch (or per-round) figures of :func:`fit`: the prior's train and validation loss (nats per sequence)
    and its kept epoch; the VAE's mean training terms and validation bound (−ELBO, nats per image). The
    ``*_start`` figures are the starting weights' when a trained model is fine-tuned (None when the stage did not
    run; ``val_bound_start`` is the model's as given, before any stage); a kept epoch of -1 means the starting
    weights were the best and were kept (both -1: the model as given, its prior included)."""

    prior_train: list[float] = field(default_factory=list)
    prior_val: list[float] = field(default_factory=list)
    prior_best_epoch: int = -1
    prior_val_start: float | None = None
    train: list[dict] = field(default_factory=list)
    val_bound: list[float] = field(default_factory=list)
    val_bound_start: float | None = None
    # Stage 4's kept round when ``patience`` is set, an index into val_bound (from 0; the log counts rounds from 1);
    # None without patience (the last round is kept).
    best_epoch: int | None = None
    stopped_early: bool = False  # stage 4 ran out of patience before its budget
    # The validation bound of the weights fit returns: the kept candidate's, else the last round's (None if unmeasured)
    val_bound_kept: float | None = None
    prior_steps: int | None = None  # the stages' budgets in optimizer steps, after ``max_passes``; None for epochs
    steps: int | None = None


def _targets(model: Trainable, x: torch.Tensor) -> torch.Tensor:
    """Dynamic binarisation (a fresh Bernoulli draw per use) for binarised data, else the images."""
    # Drawn in float32 whatever the model's dtype: half-precision uniforms are coarse and round to 1.0
    return torch.bernoulli(x.float()).to(x.dtype) if model.config.binarize else x


def _forked_rng(model: Trainable) -> contextlib.AbstractContextManager:
    """torch's global generator (and the model's CUDA device's) as it is now again when the block ends."""
    return torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else [])


@torch.no_grad()
def validation_bound(model: Trainable, images: torch.Tensor | ImageSource, parse: Latents, batch_size: int = 100,
                     seed: int = 0) -> float:
    """One-sample estimate of −ELBO in nats per image (an upper bound on −log p(x) in expectation), with hard
    latents drawn from the posterior itself, in eval mode (BatchNorm's running statistics, no dropout).
    ``images``: (N, C, H, W) in [0, 1], or a source read a batch at a time; ``parse``: their N parses.

    The noise comes from ``seed`` and leaves torch's global generator as it was, so bounds of two sets of weights
    on the same images differ by the weights, not by the draw: model selection compares like with like.
    """
    if len(images) == 0 or len(parse) != len(images):
        raise InvalidInputError(f"validation_bound needs images and their parses, as many of each and at least one, "
                                f"got {len(images)} images and {len(parse)} parses")
    with _forked_rng(model), evaluating(model):
        torch.manual_seed(seed)
        source = TensorImages(images) if isinstance(images, torch.Tensor) else images
        total = 0.0
        for start, x in zip(range(0, len(source), batch_size), source.chunks(size=batch_size)):
            x = _targets(model, x.to(device=model.device, dtype=model.dtype))
            terms = model.objective(x, parse[start:start + batch_size], tau=1.0, hard=True)
            total += terms.negative_elbo.sum().item()
    return total / len(source)


class _Parses:
    """The parses of a training set in 3 bytes a step (a part id of 16 bits, z_is as a bool), not the 20 of
    :class:`Latents`: the locations of a parse are its steps' cells, so they are not kept."""

    def __init__(self, num_images: int, num_steps: int, num_parts: int, device: torch.device) -> None:
        dtype = torch.int16 if num_parts <= torch.iinfo(torch.int16).max else torch.int32
        self.ids = torch.zeros(num_images, num_steps, dtype=dtype, device=device)
        self.present = torch.zeros(num_images, num_steps, dtype=torch.bool, device=device)

    def __setitem__(self, index: slice, latents: Latents) -> None:
        self.ids[index], self.present[index] = latents.ids.to(self.ids.dtype), latents.present.bool()

    def __getitem__(self, index: torch.Tensor | slice) -> Latents:
        present = self.present[index]
        steps = torch.arange(present.shape[1], device=present.device)
        return Latents(self.ids[index].long(), steps * present.long(), present.float())


class _Stage(torch.nn.Module):
    """A stage's loss as a module that owns the parameters it trains, so DistributedDataParallel can hook them."""

    def __init__(self, trained: torch.nn.Module, compute: Callable) -> None:
        super().__init__()
        self.trained = trained
        self.compute = compute

    def forward(self, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.compute(index)


def adam(groups: list[dict]) -> torch.optim.Adam:
    """The optimizer :meth:`np_draw.NPDraw.fit` trains with: Adam over parameter groups (dicts with "params", a
    tensor or an iterable of them, and optimizer settings such as "lr"), with torch's fused kernel where torch has
    one for the parameters' device."""
    groups = [{**group, "params": [params] if isinstance(params := group["params"], torch.Tensor) else list(params)}
              for group in groups]
    # The fused kernel updates a tensor in one pass, not a dozen elementwise ops: 3-6x faster on the CPU (a prior
    # training step's update took 4 ms of its 150)
    try:
        return torch.optim.Adam(groups, fused=True)
    except RuntimeError:  # no fused kernel for this device in this torch
        return torch.optim.Adam(groups)


class _Budget(NamedTuple):
    """A stage's length: its rounds, the optimizer steps of each (None: one pass over the training images) and the
    stage's steps (None when it is measured in epochs)."""

    rounds: int
    every: int | None
    steps: int | None

    @property
    def unit(self) -> str:
        """What the stage's progress lines call its rounds."""
        return "epoch" if self.steps is None else "round"

    def round_steps(self, round_: int) -> int | None:
        """The optimizer steps of round ``round_``: ``every``, the last round what is left of the stage's steps."""
        return None if self.steps is None else min(self.every, self.steps - round_ * self.every)


class _Run:
    """One call of :func:`fit`: the stage, epoch and step reached, and everything needed to continue exactly."""

    def __init__(self, model: Trainable, images: ImageSource, config: FitConfig, directory: Path | None, progress: bool,
                 callback: Callable[[int, FitHistory], None] | None, validation: ImageSource | None = None) -> None:
        # What the checkpoints record of the split: the fingerprint is of the training and validation images in a
        # row, so it alone cannot tell images + validation from the same images given in one piece, or cut elsewhere
        self.validation_size = None if validation is None else len(validation)
        if validation is not None:
            if config.val_fraction != FitConfig.val_fraction:
                # Not silently: the share asked for would hold out none of these images
                logger.warning("val_fraction=%s has no effect: validation= holds out its own %d images, and all %d "
                               "images are trained on; drop one of them", config.val_fraction, len(validation),
                               len(images))
            self.train_idx = torch.arange(len(images))
            self.val_idx = torch.arange(len(images), len(images) + len(validation))
            images = images + validation
        else:
            split = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed))
            held = (min(max(1, round(len(images) * config.val_fraction)), len(images) - 1)
                    if len(images) > 1 and config.val_fraction > 0 else 0)
            self.train_idx, self.val_idx = (split[held:], split[:held]) if held else (split, split)
            if not held:
                logger.info("no images held out (%s): the validation bound and model selection use the training "
                            "images", "a single image" if len(images) == 1 else "val_fraction=0")
        self.model, self.images, self.config, self.progress, self.callback = model, images, config, progress, callback
        self.directory = directory
        colour = model.config.channels == 3
        self.parse_weight = config.parse_weight if config.parse_weight is not None else (500.0 if colour else 50.0)
        self.rate = config.substitution_rate if config.substitution_rate is not None else (0.01 if colour else 0.005)
        self.order_generator = torch.Generator().manual_seed(config.seed + 1)
        self.global_step, self.history = 0, FitHistory()
        self._next_stage("bank", save=False)
        # A fine-tune's model as given, kept while its prior is retrained (see _measure_start)
        self.start_state: dict[str, torch.Tensor] | None = None
        self.learning_rates: list[float] = []  # the stage's rates, before warm-up
        self.parsed: _Parses | None = None
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        if len(self.train_idx) < self.world:  # a process without a training image has nothing to average
            raise InvalidInputError(f"fit under torchrun with {self.world} processes needs at least {self.world} "
                                    f"training images, got {len(self.train_idx)}")
        self.fingerprint = images.fingerprint(progress and self.rank == 0) if directory is not None else ""

    def _budget(self, prior: bool, epochs: int | None, steps: int | None) -> _Budget:
        """The prior's or the VAE's budget from its config fields, ``max_passes`` over the training images at most."""
        if steps is None:
            return _Budget(epochs if epochs is not None else DEFAULT_PRIOR_EPOCHS if prior else DEFAULT_EPOCHS,
                           None, None)
        batch_size = self.config.prior_batch_size if prior else self.config.batch_size
        if self.config.max_passes is not None:
            steps = min(steps, max(1, math.ceil(self.config.max_passes * len(self.train_idx) / batch_size)))
        return _Budget(math.ceil(steps / self.config.eval_every), self.config.eval_every, steps)

    @property
    def _at_stage_start(self) -> bool:
        """Whether the stage under way has yet to take a step."""
        return self.epoch == 0 and self.step == 0

    def _log_cap(self, name: str, asked: int | None, budget: _Budget, begun: bool = False) -> None:
        """Log a stage's budget cut by max_passes: when the stage starts, or on a resume that changed it (``begun``)."""
        if (begun or self._at_stage_start) and asked is not None and budget.steps < asked:
            logger.info("%s=%d is cut to %d: max_passes=%s over the %d training images (FitConfig.max_passes; "
                        "np-draw fit --max-passes)", name, asked, budget.steps, self.config.max_passes,
                        len(self.train_idx))

    def _generators(self) -> torch.Tensor:
        """This process's torch generator state, and its CUDA device's after it, as one uint8 tensor."""
        states = [torch.get_rng_state()]
        if self.model.device.type == "cuda":  # the model's device only: asking every GPU would start CUDA on each
            states.append(torch.cuda.get_rng_state(self.model.device))
        return torch.cat(states)

    def _save(self) -> None:
        if self.directory is None:
            return
        # Every process draws its own dropout masks, Gumbel noise and binarisations, so every one's generators are
        # kept (gathered by process 0, which alone writes): a resume continues each process's stream exactly.
        mine = self._generators()
        states = [mine]
        if self.world > 1:
            mine = mine.to(self.model.device)  # NCCL gathers CUDA tensors, gloo CPU ones
            states = [torch.empty_like(mine) for _ in range(self.world)]
            dist.all_gather(states, mine)
        try:
            if self.rank == 0:
                self._write(states)
        finally:
            # No process goes on before the checkpoint is on disk: one that left fit and resumed at once read the
            # pointer to the checkpoint this save replaces, whose files process 0 then removed (one process: no-op)
            self._all_sum(0.0)

    def _write(self, states: list[torch.Tensor]) -> None:
        """Process 0's part of :meth:`_save`: the checkpoint, with every process's generator ``states``."""
        tensors = {"model": self.model.state_dict(),
                   "rng": {"order": self.order_generator.get_state(),
                           **{f"process{rank}": state.cpu() for rank, state in enumerate(states)}}}
        optional = {"order": None if self.order is None else {"order": self.order}, "best": self.best_state,
                    "start": self.start_state}
        tensors.update({stem: group for stem, group in optional.items() if group is not None})
        optimizer_meta = None
        if self.optimizer is not None:
            tensors["optimizer"], optimizer_meta = optimizer_to_checkpoint(self.optimizer)
        state = {"stage": self.stage, "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                 "sums": self.sums, "history": asdict(self.history), "best_val": self.best_val, "stalled": self.stalled,
                 "optimizer": optimizer_meta, "config": asdict(self.config), "num_images": len(self.images),
                 "fingerprint": self.fingerprint, "validation": self.validation_size, "processes": self.world,
                 "device": self.model.device.type}
        save_checkpoint(self.directory, f"step-{self.global_step:08d}-{self.stage}", tensors, state)

    def _restore(self) -> bool:
        loaded = load_checkpoint(self.directory)
        if loaded is None:
            return False
        tensors, state = loaded
        # Before the images' fingerprint, which is of the images in the model's dtype: another dtype reads as
        # other images. The optimizer's state and the sums are of the checkpoint's dtype's arithmetic too.
        stored = tensors["model"]["bank.parts"].dtype
        if stored != self.model.dtype:
            raise InvalidInputError(f"cannot resume from {self.directory}: it trained the model in "
                                    f"{str(stored).removeprefix('torch.')}, and this one is "
                                    f"{str(self.model.dtype).removeprefix('torch.')}: convert it "
                                    f"(model.to({stored})) to resume")
        # The VAE's budget alone may change: a resume with more epochs (or steps) extends a run, finished or not.
        # A field the checkpoint does not know is an option added since, at its default.
        config, saved = asdict(self.config), {**asdict(FitConfig()), **state["config"]}
        changed = sorted(key for key in config if key not in ("epochs", "steps") and saved[key] != config[key])
        if changed or state["fingerprint"] != self.fingerprint:
            differences = ", ".join(f"{key}={saved[key]!r}, now {config[key]!r}" for key in changed)
            what = (f"another FitConfig ({differences})" if changed
                    else "other images (or the same files framed another way, e.g. another crop, or a dataset "
                         "whose random transforms draw other images at each read)")
            raise InvalidInputError(f"cannot resume from {self.directory}: it was written for {what}; only epochs "
                                    "and steps may differ; pass the same images and config, or a new output folder")
        # A checkpoint written before the split was recorded has no "validation": its split cannot be checked
        held = state.get("validation", self.validation_size)
        if held != self.validation_size:
            def split(size: int | None) -> str:
                return (f"val_fraction={self.config.val_fraction} of the images held out" if size is None
                        else f"the last {size} images held out (validation=)")
            raise InvalidInputError(f"cannot resume from {self.directory}: it was written with {split(held)}, now "
                                    f"{split(self.validation_size)}; the run's held-out images cannot change (its "
                                    "bank, prior and rounds were fitted and chosen on that split): pass the same "
                                    "images and validation, or a new output folder")
        cfg, trained = self.config, len(state["history"]["train"])
        before, after = self._budget(False, saved["epochs"], saved["steps"]), self._budget(False, cfg.epochs, cfg.steps)
        # A round under way counts as trained: stopping inside it would keep part of it.
        under_way = trained + (state["stage"] == "vae" and state["step"] > 0)
        asked = f"cannot resume from {self.directory} with epochs={cfg.epochs}, steps={cfg.steps}"
        if under_way and before.unit != after.unit:
            unit = "epochs" if before.steps is None else "steps"
            raise InvalidInputError(f"{asked}: its encoder and decoder trained in {unit}; give the budget in the "
                                    "same unit")
        sizes = [[budget.round_steps(i) for i in range(under_way)] for budget in (before, after)]
        if after.rounds < under_way:
            least = f"epochs={under_way}" if before.steps is None else f"steps={sum(sizes[0])}"
            done = (f"{under_way} epochs" if before.steps is None else
                    f"{under_way} rounds of eval_every={cfg.eval_every} steps, {sum(sizes[0])} steps")
            raise InvalidInputError(f"{asked}: it has trained or begun {done}; pass at least {least}")
        if sizes[0] != sizes[1]:  # in epochs both are all None
            # Each round's images were drawn for its size: a round already trained or under way cannot change
            raise InvalidInputError(f"{asked}: the rounds it has trained or begun hold {sizes[0]} steps, which this "
                                    f"budget would make {sizes[1]}; a run is extended by whole rounds of "
                                    f"eval_every={cfg.eval_every} steps (the last one cut short to the "
                                    "budget), so give steps that keep them, or train into a new folder")
        check_weights(self.model.state_dict(),
                      {key: (list(value.shape), value.is_floating_point()) for key, value in tensors["model"].items()},
                      f"cannot resume from {self.directory}: its model weights, written by another np-draw version or "
                      "config, do not fit this model (train into a new folder)", "the checkpoint's model.safetensors")
        # A run that keeps its bank started from a trained model: a trained model given to resume it must be that one
        # (an unfitted one takes everything from the checkpoint), or its weights, card and licence would be another's
        if not cfg.fit_bank and self.model.is_fitted \
                and not torch.equal(self.model.bank.parts.cpu(), tensors["model"]["bank.parts"].to(self.model.dtype)):
            raise InvalidInputError(f"cannot resume from {self.directory}: it was started from another trained model "
                                    "(its part bank differs from this model's); resume with the model the run started "
                                    "from (np-draw fit --from NAME as at first)")
        self.model.load_state_dict(tensors["model"])
        self.order_generator.set_state(tensors["rng"]["order"])
        generators = tensors["rng"].get(f"process{self.rank}")
        if generators is None or len(generators) != len(self._generators()):
            # Written by fewer processes, on another kind of device, or by np-draw before it kept every process's
            # generators: this process keeps its seeded stream
            written = (f"{state['processes']} processes on {state['device']}" if "processes" in state
                       else "an earlier version of np-draw")
            logger.warning("process %d: the checkpoint in %s holds no generator state for it (written by %s), so its "
                           "random draws do not continue the run's exactly", self.rank, self.directory, written)
        else:
            cpu = len(torch.get_rng_state())
            torch.set_rng_state(generators[:cpu])
            if self.model.device.type == "cuda":
                torch.cuda.set_rng_state(generators[cpu:], self.model.device)
        self.stage, self.epoch, self.step = state["stage"], state["epoch"], state["step"]
        self.global_step, self.sums, self.best_val = state["global_step"], state["sums"], state["best_val"]
        self.stalled = state["stalled"]
        self.history = FitHistory(**state["history"])
        self.order = tensors["order"]["order"] if "order" in tensors else None
        self.best_state, self.start_state = tensors.get("best"), tensors.get("start")
        self._optimizer_meta = (tensors.get("optimizer", {}), state["optimizer"])
        if self.stage == "done" and after == before:
            if (cfg.epochs, cfg.steps) != (saved["epochs"], saved["steps"]):
                logger.info("the budget asked for comes to the finished run's own (steps are capped at max_passes "
                            "over the training images): nothing more to train")
        elif self.stage == "done" and (self.history.stopped_early
                                       or (cfg.patience is not None and self.stalled >= cfg.patience)):
            # Out of patience at its last round, a run given this budget from the start would have stopped there
            self.history.stopped_early = after.rounds > trained
            logger.info("the finished run stopped early (patience); more epochs or steps change nothing")
        elif self.stage == "done":
            logger.info("extending the finished run from %d to %d epochs or rounds", trained, after.rounds)
            self.stage, self.epoch = "vae", trained
        if after != before and (self.stage == "done" or self.stage == "vae" and not self._at_stage_start):
            # As a new run logs it: a budget that grows on resume is cut too, and says so (a stage 4 yet to start
            # logs it when it starts)
            self._log_cap("steps", cfg.steps, after, begun=True)
        budget = self._budget(True, cfg.prior_epochs, cfg.prior_steps) if self.stage == "prior" else after
        if self.stage == "done":
            logger.info("resumed a finished run (%d %ss)", trained, budget.unit)
        else:  # counted from 1, as the progress bars count them
            logger.info("resumed at stage %s, %s %d, step %d", self.stage, budget.unit, self.epoch + 1, self.step)
        return True

    def _rate_scale(self, times: int = 1) -> float:
        """The factor on a learning rate that is full from FitConfig.full_rate_images / ``times`` images on."""
        full = self.config.full_rate_images
        return 1.0 if full is None else min(1.0, times * len(self.train_idx) / full)

    def _make_optimizer(self, groups: list[dict]) -> None:
        self.learning_rates = [group["lr"] for group in groups]
        self.optimizer = adam(groups)
        if self._optimizer_meta is not None and self._optimizer_meta[1] is not None:
            optimizer_from_checkpoint(self.optimizer, *self._optimizer_meta)
        self._optimizer_meta = None  # the checkpoint's state is for the stage it was saved in

    def _next_stage(self, stage: str, save: bool = True) -> None:
        """Begin ``stage``: no step taken, and no data order, sums, optimizer or best weights yet."""
        self.stage, self.epoch, self.step, self.sums = stage, 0, 0, {}
        self.order: torch.Tensor | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._optimizer_meta: tuple[dict, dict | None] | None = None
        # The best weights of the stage under way and their validation figure, for model selection.
        self.best_val, self.best_state, self.stalled = math.inf, None, 0
        if save:
            self._save()

    def _select(self, value: float, trained: torch.nn.Module) -> bool:
        """Keep ``trained``'s weights if ``value`` is the best validation figure of the stage so far; True if so."""
        if value < self.best_val:
            self.best_state = {key: tensor.detach().clone() for key, tensor in trained.state_dict().items()}
            self.best_val, self.stalled = value, 0
            return True
        self.stalled += 1
        return False

    def _epochs(self, budget: _Budget, batch_size: int, trained: torch.nn.Module,
                compute: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
                end_epoch: Callable[[], bool], name: str) -> None:
        """Run the rounds of ``budget`` on the parameters of ``trained``. ``compute(index)`` returns the loss summed
        over the images ``index`` and sums of the figures to log; ``end_epoch()`` returns True to stop early.

        Under torchrun each global batch is shared out over the processes and ``trained`` is wrapped in
        DistributedDataParallel, which averages gradients: each process back-propagates its loss sum times the
        number of processes over the global batch size, so the result is the gradient of the global batch's mean.
        """
        runner: torch.nn.Module = _Stage(trained, compute)
        if self.world > 1:
            runner = DistributedDataParallel(runner)
        while self.epoch < budget.rounds and not self.history.stopped_early:
            if self.order is None:
                count = len(self.train_idx) if budget.steps is None else budget.round_steps(self.epoch) * batch_size
                passes = [torch.randperm(len(self.train_idx), generator=self.order_generator)
                          for _ in range(math.ceil(count / len(self.train_idx)))]
                self.order = self.train_idx[torch.cat(passes)[:count]]
            steps = math.ceil(len(self.order) / batch_size)
            if 0 < len(self.order) % batch_size < self.world:
                steps -= 1  # a last batch too small to give every process an image is dropped
            with tqdm(total=steps, initial=self.step, desc=f"{name} {self.epoch + 1}/{budget.rounds}",
                      disable=not self.progress or self.rank != 0, leave=False) as bar:
                while self.step < steps:
                    index = self.order[self.step * batch_size:(self.step + 1) * batch_size]
                    with self._autocast():
                        loss_sum, values = runner(index[self.rank::self.world])
                    values = {key: self._all_sum(value) for key, value in values.items()}
                    self._check_finite(values["loss"] / len(index), f"{name} {self.epoch + 1}, step {self.step + 1}: "
                                                                    "the training loss")
                    self.optimizer.zero_grad(set_to_none=True)
                    (loss_sum * self.world / len(index)).backward()
                    if self.config.warmup_steps:
                        # Worked out from the stage's step, so a resumed run sets the same rates.
                        done = self.epoch * (budget.every or steps) + self.step
                        for group, rate in zip(self.optimizer.param_groups, self.learning_rates, strict=True):
                            group["lr"] = rate * min(1.0, (done + 1) / self.config.warmup_steps)
                    self.optimizer.step()
                    for key, value in values.items():
                        self.sums[key] = self.sums.get(key, 0.0) + value
                    self.step += 1
                    self.global_step += 1
                    bar.update()
                    if self.config.checkpoint_every and self.global_step % self.config.checkpoint_every == 0:
                        self._save()
            # Means over the round's images: a short last batch counts for its images, not as much as a full one
            self.sums = {key: value / min(steps * batch_size, len(self.order)) for key, value in self.sums.items()}
            stop = end_epoch()
            self.epoch, self.step, self.order, self.sums = self.epoch + 1, 0, None, {}
            if stop and self.epoch < budget.rounds:  # on the last round the budget is spent: no early stop
                logger.info("%s: no better validation figure in %d rounds; stopping", name, self.stalled)
                self.history.stopped_early = True
            self._save()

    def _check_finite(self, value: float, what: str) -> float:
        if math.isfinite(value):
            return value
        raise TrainingDivergedError(f"{what} is {value}: training diverged; lower the learning rates (prior_lr, "
                                    "encoder_lr, decoder_lr) or warm them up (warmup_steps)")

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.config.mixed_precision else contextlib.nullcontext()

    def _all_sum(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.model.device)
        dist.all_reduce(tensor)
        return tensor.item()

    def _prior_stage(self) -> None:
        prior, bank, cfg = self.model.prior, self.model.bank, self.config
        prior.requires_grad_(True)
        self._make_optimizer([{"params": prior.parameters(), "lr": cfg.prior_lr * self._rate_scale()}])

        def validate() -> float:
            return self._held_out_mean(lambda index: evaluate_prior(prior, bank, self.parsed[index]),
                                       "the prior's validation loss")

        def compute(index: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            prior.train()
            loss = -prior.log_prob(self.parsed[index], bank).sum()
            return loss, {"loss": loss.item()}

        def end_epoch() -> bool:
            self.history.prior_train.append(self.sums["loss"])
            self.history.prior_val.append(validate())
            logger.info("prior %s %d: train %.3f, val %.3f nats/sequence", unit, self.epoch + 1,
                        self.history.prior_train[-1], self.history.prior_val[-1])
            if self._select(self.history.prior_val[-1], prior):
                self.history.prior_best_epoch = self.epoch
            return False

        if self.history.prior_val_start is None and self._at_stage_start and not cfg.fit_bank:
            # A trained prior is the first candidate: training on few images must not leave it worse.
            self.history.prior_val_start = validate()
            self._select(self.history.prior_val_start, prior)
            logger.info("prior before training: val %.3f nats/sequence", self.history.prior_val_start)
        budget = self._budget(True, cfg.prior_epochs, cfg.prior_steps)
        self._log_cap("prior_steps", cfg.prior_steps, budget)
        unit, self.history.prior_steps = budget.unit, budget.steps
        self._epochs(budget, cfg.prior_batch_size, prior, compute, end_epoch, f"prior {unit}")
        if self.best_state is not None:
            prior.load_state_dict(self.best_state)

    def _vae_stage(self) -> None:
        model, cfg = self.model, self.config
        model.prior.eval().requires_grad_(False)
        trained = torch.nn.ModuleList([model.encoder, model.decoder]).requires_grad_(True)
        bias, encoder_scale = model.encoder.location_bias, self._rate_scale(10)
        weights = [p for p in model.encoder.parameters() if p is not bias]
        self._make_optimizer([{"params": weights, "lr": cfg.encoder_lr * encoder_scale},
                              {"params": [bias], "lr": cfg.location_lr * encoder_scale},
                              {"params": model.decoder.parameters(), "lr": cfg.decoder_lr * self._rate_scale()}])
        # Scaled as the decoder's rate: on few images the decoder's pull towards the parses cost the held-out
        # reconstructions more than the samples gained.
        canvas_weight = cfg.parse_canvas_weight * self._rate_scale()

        def temperature() -> float:
            return gumbel_temperature(self.epoch, cfg.tau_decay, cfg.tau_min, cfg.tau_start)

        def compute(index: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            trained.train()
            if cfg.freeze_batchnorm:
                for module in trained.modules():
                    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                        module.eval()
            substitution = substitution_probability(self.epoch, self.rate, cfg.substitution_start)
            terms = model.objective(_targets(model, self._read(index)), self.parsed[index], tau=temperature(),
                                    substitution=substitution, decode_parse=canvas_weight > 0)
            loss = terms.negative_elbo + self.parse_weight * terms.parse_ce
            values = {"reconstruction": terms.reconstruction.sum().item(), "kl": terms.kl.sum().item(),
                      "parse_ce": terms.parse_ce.sum().item()}
            if terms.parse_reconstruction is not None:
                loss = loss + canvas_weight * terms.parse_reconstruction
                values["parse_reconstruction"] = terms.parse_reconstruction.sum().item()
            loss = loss.sum()
            return loss, {"loss": loss.item(), **values}

        def end_epoch() -> bool:
            self.history.train.append(dict(self.sums, tau=temperature()))
            self.history.val_bound.append(self._validation_bound())
            logger.info("%s %d: loss %.2f, reconstruction %.2f, KL %.2f, parse CE %.3f; validation bound %.2f nats",
                        unit, self.epoch + 1, *(self.sums[k] for k in ("loss", "reconstruction", "kl", "parse_ce")),
                        self.history.val_bound[-1])
            if cfg.patience is not None and self._select(self.history.val_bound[-1], trained):
                self.history.best_epoch = self.epoch
            if self.callback is not None and self.rank == 0:
                self.callback(self.epoch, self.history)  # the history already says which round is kept
            return cfg.patience is not None and self.stalled >= cfg.patience

        if self._at_stage_start and not cfg.fit_bank and self.best_state is None:
            # The starting encoder and decoder are the first candidate: with the prior as given, or as its stage left it
            start = self.history.val_bound_start
            if start is None:  # the prior's stage did not run: the model as given
                start = self.history.val_bound_start = self._validation_bound()
                logger.info("before training: validation bound %.2f nats", start)
            elif cfg.patience is not None and self.history.prior_best_epoch != -1:
                start = self._validation_bound()
                logger.info("with the retrained prior, before the encoder and decoder train: validation bound %.2f "
                            "nats", start)
            if cfg.patience is not None:
                self._select(start, trained)
                self.history.best_epoch = -1
        budget = self._budget(False, cfg.epochs, cfg.steps)
        self._log_cap("steps", cfg.steps, budget)
        unit, self.history.steps = budget.unit, budget.steps
        self._epochs(budget, cfg.batch_size, trained, compute, end_epoch, unit)

    def _warn_if_few_steps(self) -> None:
        """Said as a new run from scratch starts, not after its bank and prior stages: a budget too small for a new
        encoder and decoder draws grey blobs."""
        cfg = self.config
        budget = self._budget(False, cfg.epochs, cfg.steps)
        planned = budget.steps or budget.rounds * math.ceil(len(self.train_idx) / cfg.batch_size)
        if cfg.fit_bank and 0 < planned < _FEW_STEPS:  # 0 skips the stage
            logger.warning("training from scratch with %d encoder/decoder steps, where a new model needs hundreds to "
                           "draw recognisable images (docs/results.md, low-data curve: %d steps, after %d of the "
                           "prior): pass steps=%d or more (np-draw fit --steps, and --prior-steps), or fine-tune a "
                           "trained model (fit_bank=False; np-draw fit --from NAME)", planned, _FEW_STEPS,
                           3 * _FEW_STEPS, _FEW_STEPS)

    def _held_out_mean(self, mean: Callable[[torch.Tensor], float], what: str) -> float:
        """The mean over the held-out images of ``mean(index)``, a mean over the images ``index``: each process
        measures its share."""
        share = self.val_idx[self.rank::self.world]
        total = mean(share) * len(share) if len(share) else 0.0
        return self._check_finite(self._all_sum(total) / len(self.val_idx), what)

    def _validation_bound(self) -> float:
        """The model's validation bound on the held-out images: nats per image."""
        return self._held_out_mean(lambda index: validation_bound(self.model, self.images.subset(index),
                                                                  self.parsed[index], seed=self.config.seed),
                                   "the validation bound")

    def _start_modules(self) -> torch.nn.Module:
        """What a fine-tune changes: the prior, the encoder and the decoder (the part bank is kept)."""
        return torch.nn.ModuleDict({"prior": self.model.prior, "encoder": self.model.encoder,
                                    "decoder": self.model.decoder})

    def _measure_start(self) -> None:
        """Before a fine-tune retrains its prior: the model's validation bound as given, and with ``patience`` its
        weights, the final choice when no candidate with the retrained prior scores better. The prior's stage keeps
        the prior that scores best on the parses, which the bound (whose KL is against the encoder's posterior) need
        not follow: without this, a fine-tune could end worse than it started."""
        cfg = self.config
        if cfg.fit_bank or not self._at_stage_start or self.history.val_bound_start is not None:
            return
        self.history.val_bound_start = self._validation_bound()
        logger.info("before training: validation bound %.2f nats", self.history.val_bound_start)
        if cfg.patience is not None:
            self.start_state = {key: value.detach().clone()
                                for key, value in self._start_modules().state_dict().items()}

    def _read(self, index: torch.Tensor) -> torch.Tensor:
        """The images at ``index`` on the model's device and in its dtype: (n, C, H, W)."""
        return self.images.read(index).to(device=self.model.device, dtype=self.model.dtype)

    def _bank_images(self) -> torch.Tensor:
        """The training images the part bank is fitted on: all of them up to ``config.bank_images``, else a seeded
        sample of that many (k-means takes a sample of patches anyway), so that memory does not grow with N."""
        limit = self.config.bank_images
        if limit is None or len(self.train_idx) <= limit:
            return self.train_idx
        pick = torch.randperm(len(self.train_idx), generator=torch.Generator().manual_seed(self.config.seed))
        return self.train_idx[pick[:limit].sort().values]

    def _parse(self) -> None:
        """Parse every image a chunk at a time into the compact store."""
        model, chunk, cfg = self.model, 4096, self.model.config
        self.parsed = _Parses(len(self.images), model.grid.num_cells, cfg.num_parts, model.device)
        with tqdm(total=len(self.images), desc="parse", disable=not self.progress or self.rank != 0, leave=False) as bar:
            for start, x in zip(range(0, len(self.images), chunk), self.images.chunks(size=chunk)):
                canvas = to_canvas(x.to(device=model.device, dtype=model.dtype), cfg.canvas_size)
                self.parsed[start:start + len(x)] = parse(canvas, model.bank, model.grid,
                                                          empty_threshold=cfg.empty_threshold)
                bar.update(len(x))

    def run(self, resume: bool) -> FitHistory:
        torch.manual_seed(self.config.seed + self.rank)
        if not (resume and self._restore()):
            if resume:
                logger.info("nothing to resume from in %s: a new run starts", self.directory)
            self._warn_if_few_steps()
            self._save()
        if self.stage == "bank":
            _check_bank(self.model, self.config)  # again: a checkpoint of a run refused by earlier code is at this stage
            if self.config.fit_bank:
                self.model.bank.fit(to_canvas(self._read(self._bank_images()), self.model.config.canvas_size),
                                    self.model.grid, empty_threshold=self.model.config.empty_threshold,
                                    seed=self.config.seed)
            if self.world > 1:
                dist.broadcast(self.model.bank.parts, 0)
            self._next_stage("prior")
        if self.stage != "done":  # a finished run resumed has nothing left to train on the parses
            self._parse()
        if self.stage == "prior":
            logger.info("%d images parsed, %.1f drawn steps per image", len(self.images),
                        self.parsed.present.sum(1, dtype=torch.float).mean().item())
            if self.config.fit_prior:
                self._measure_start()
                self._prior_stage()
            self._next_stage("vae")
        if self.stage == "vae":
            self._vae_stage()
            # The last weights and the optimizer's state stay in the last checkpoint (the best round's beside them),
            # so more epochs later continue this run exactly.
            self.stage = "done"
            self._save()
        history = self.history
        if (self.config.patience is not None and self.start_state is not None and history.prior_best_epoch != -1
                and history.val_bound_start <= self.best_val):
            self._start_modules().load_state_dict(self.start_state)
            history.prior_best_epoch = history.best_epoch = -1
            history.val_bound_kept = history.val_bound_start
            logger.info("kept the model as it was given, its prior included (validation bound %.2f nats; with the "
                        "retrained prior the best was %.2f)", history.val_bound_start, self.best_val)
        elif self.config.patience is not None and self.best_state is not None:
            torch.nn.ModuleList([self.model.encoder, self.model.decoder]).load_state_dict(self.best_state)
            history.val_bound_kept = self.best_val
            # The encoder and decoder of the round kept; the prior is the stage's best when it was retrained
            kept = "the starting encoder and decoder" if history.best_epoch < 0 else f"round {history.best_epoch + 1}"
            prior = " with the retrained prior" if not self.config.fit_bank and history.prior_best_epoch >= 0 else ""
            logger.info("kept %s%s (validation bound %.2f nats)", kept, prior, self.best_val)
        elif history.val_bound:  # without patience, the last round's weights
            history.val_bound_kept = history.val_bound[-1]
        elif history.prior_best_epoch == -1:  # no round, and the prior as given: the model's own bound, if measured
            history.val_bound_kept = history.val_bound_start
        self.model.eval()
        return history


def _check_bank(model: Trainable, config: FitConfig) -> None:
    if not config.fit_bank and not model.is_fitted:
        raise InvalidInputError("fit_bank=False needs a model whose part bank is already fitted")


def fit(model: Trainable, images: torch.Tensor | ImageSource, config: FitConfig | None = None, *,
        output_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
        callback: Callable[[int, FitHistory], None] | None = None,
        validation: torch.Tensor | ImageSource | None = None) -> FitHistory:
    """The work of :meth:`np_draw.NPDraw.fit`, which documents the arguments, on images it has already checked:
    ``images`` and ``validation`` are (N, C, H, W) tensors in [0, 1] on the model's device, or
    :class:`~np_draw.images.ImageSource` objects read a batch at a time; ``config`` None is :class:`FitConfig`'s
    defaults. Returns the history of losses and validation figures.

    Under ``torchrun`` (WORLD_SIZE > 1) each process takes its share of every global batch and the trained modules
    are wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU); only process 0 writes checkpoints. Prior
    pretraining then matches one process with the same global batch up to float rounding (when dropout is 0: dropout
    masks are drawn per process); the VAE stage differs by design, as BatchNorm statistics and Gumbel noise are per
    process.
    """
    if resume and output_dir is None:
        raise InvalidInputError("resume=True needs output_dir, the folder that holds the checkpoints")
    config = config or FitConfig()
    if model.dtype == torch.float16:
        raise InvalidTypeError("fit needs a float32 or bfloat16 model, got float16, whose weights and gradients "
                               "overflow: load it in float32 (from_pretrained(..., dtype=torch.float32), or "
                               "model.float()); on CUDA, mixed_precision=True trains in bfloat16")
    if any(parameter.is_inference() for parameter in model.parameters()):
        raise InvalidInputError("the model's weights were made under torch.inference_mode(), and torch cannot train "
                                "such tensors: build or load the model outside the inference_mode block (fit itself "
                                "may be called inside it)")
    if config.mixed_precision and model.device.type != "cuda":
        raise InvalidInputError(f"mixed_precision=True needs the model on CUDA, got device {model.device}")
    autocast = autocast_dtype(model.device.type)
    if autocast == torch.float16:
        raise InvalidInputError(f"fit is called inside torch.autocast(dtype=torch.float16) on {model.device.type}, "
                                "which trains without loss scaling: small gradients underflow to zero and large ones "
                                "overflow. Call fit outside the autocast block; on CUDA, FitConfig(mixed_precision=True) "
                                "trains in bfloat16, which needs no scaling")
    if model.device.type == "cpu" and autocast is not None and (slow := slow_on_cpu(autocast)):
        logger.warning("fit is called inside torch.autocast on the CPU, so it trains in %s: %s "
                       "(FitConfig.mixed_precision is for CUDA); call fit outside the autocast block",
                       str(autocast).removeprefix("torch."), slow)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        # Launched by torchrun: one process per device, gradients summed over processes.
        backend = "nccl" if model.device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        # Kept for the caller (which process writes the model is asked of it after fit), and torn down at exit,
        # as torch asks of every process group
        atexit.register(lambda: dist.destroy_process_group() if dist.is_initialized() else None)
        logger.info("process %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    directory = None if output_dir is None else Path(output_dir) / "checkpoints"
    if not (resume and has_checkpoint(directory)):
        _check_bank(model, config)
    # Process 0 alone writes checkpoints, and may have written this run's first before another process looks
    if not resume and directory is not None and (not dist.is_initialized() or dist.get_rank() == 0) \
            and has_checkpoint(directory):
        logger.warning("%s holds the checkpoints of an earlier run: without resume=True (np-draw fit --resume) a new "
                       "run starts and overwrites them", directory)
    created: list[Path] = []  # the folders this call makes, deepest first: removed if the images are refused
    if directory is not None:  # before any work (reading every image for its fingerprint): a run that cannot keep
        created = list(itertools.takewhile(lambda p: not p.exists(), [directory, *directory.parents]))
        try:  # its checkpoints must not work first
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UnwritablePathError(f"output_dir: cannot create the folder {str(output_dir)!r}: "
                                      f"{error.strerror or error}") from error
    images, validation = (TensorImages(x) if isinstance(x, torch.Tensor) else x for x in (images, validation))
    # On the CPU, else large activations are fresh pages at every step (bench_allocator.py)
    with keeping_freed_memory() if model.device.type == "cpu" else contextlib.nullcontext():
        try:
            run = _Run(model, images, config, directory, progress, callback, validation)
        except BaseException:
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        # torch's global generator drives the run (seeded from config.seed, saved in checkpoints); the caller's own
        # stream goes on after fit as it was before it. Each stage sets requires_grad on what it trains: the
        # caller's flags come back after the run, and a run that stops (an error, a KeyboardInterrupt) hands every
        # module back in the mode it was in, rather than half in training mode.
        flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
        modes = [(module, module.training) for module in model.modules()]
        try:
            # fit trains, also when called under torch.no_grad() or torch.inference_mode()
            with _forked_rng(model), torch.inference_mode(False), torch.enable_grad():
                return run.run(resume)
        except BaseException as error:
            for module, mode in modes:
                module.training = mode
            if isinstance(error, InvalidInputError) and run.stage == "bank" and created:
                # Refused before any training (too few patches for the bank): nothing to resume, and the folders
                # this call made held only its first checkpoint (8 MB of an untrained model)
                shutil.rmtree(created[-1], ignore_errors=True)
            raise
        finally:
            for parameter, flag in flags:
                # The last step's gradients are of no use after the run, and would hold the model's size again
                parameter.requires_grad_(flag).grad = None
