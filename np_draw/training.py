"""Training the prior (stage 1 of the paper's two stages): teacher forcing on parsed latent sequences."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .bank import PartBank
from .data import to_canvas
from .elbo import gumbel_temperature, objective, substitution_probability
from .latents import Latents
from .parsing import parse
from .prior import Prior

logger = logging.getLogger(__name__)


def prior_loss(prior: Prior, bank: PartBank, latents: Latents) -> torch.Tensor:
    """Teacher-forcing loss, −log p(z) in nats per sequence averaged over the batch: CE(z_id) + CE(z_loc) on drawn
    steps and BCE(z_is) on all steps (spec §5)."""
    return -prior.log_prob(latents, bank).mean()


@torch.no_grad()
def evaluate_prior(prior: Prior, bank: PartBank, latents: Latents, batch_size: int = 512) -> float:
    """Mean −log p(z) in nats per sequence over ``latents``, in eval mode (no dropout)."""
    was_training = prior.training
    prior.eval()
    total = 0.0
    for start in range(0, len(latents), batch_size):
        chunk = latents[start:start + batch_size]
        total += -prior.log_prob(chunk, bank).sum().item()
    prior.train(was_training)
    return total / len(latents)


@dataclass
class PriorHistory:
    """Per-epoch losses (nats per sequence) of :func:`pretrain_prior`, and the epoch whose weights were kept."""

    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    best_epoch: int = -1


def pretrain_prior(prior: Prior, bank: PartBank, train: Latents, val: Latents, *, epochs: int,
                   batch_size: int = 64, lr: float = 1e-4, seed: int = 0, max_steps_per_epoch: int | None = None,
                   progress: bool = True) -> PriorHistory:
    """Pretrain the prior on parsed sequences with Adam; keep the weights of the epoch with the lowest
    validation loss (paper: batch 64, lr 1e-4).

    Args:
        prior, bank: the model's prior (trained in place) and its part bank.
        train, val: parsed latents, on the prior's device.
        epochs: passes over ``train``.
        batch_size, lr: Adam's batch and learning rate.
        seed: seeds the data order and dropout.
        max_steps_per_epoch: cut each epoch short (for quick comparisons).
        progress: show a progress bar.
    Returns:
        The per-epoch history; ``prior`` holds the best epoch's weights.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(prior.parameters(), lr=lr)
    history = PriorHistory()
    best, best_state = math.inf, None
    steps = math.ceil(len(train) / batch_size)
    if max_steps_per_epoch is not None:
        steps = min(steps, max_steps_per_epoch)
    prior.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=generator).to(train.ids.device)
        total = 0.0
        for step in tqdm(range(steps), desc=f"prior epoch {epoch + 1}/{epochs}", disable=not progress,
                         leave=False):
            loss = prior_loss(prior, bank, train[order[step * batch_size:(step + 1) * batch_size]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.train.append(total / steps)
        history.val.append(evaluate_prior(prior, bank, val))
        logger.info("prior epoch %d: train %.3f, val %.3f nats/sequence", epoch + 1, history.train[-1],
                    history.val[-1])
        if history.val[-1] < best:
            best, best_state, history.best_epoch = history.val[-1], copy.deepcopy(prior.state_dict()), epoch
    prior.load_state_dict(best_state)
    prior.eval()
    return history


@dataclass
class FitConfig:
    """Hyper-parameters of :func:`fit` (paper and reference code unless said otherwise)."""

    seed: int = 0
    val_fraction: float = 0.1  # held out for model selection and the validation bound
    fit_bank: bool = True
    fit_prior: bool = True
    prior_epochs: int = 20  # paper: 200
    prior_batch_size: int = 64
    prior_lr: float = 1e-4
    epochs: int = 10  # stage 2 (VAE)
    batch_size: int = 150
    encoder_lr: float = 1e-3
    decoder_lr: float = 1e-4
    parse_weight: float | None = None  # None: 50 for grey, 500 for colour data
    substitution_rate: float | None = None  # None: 0.005 for grey, 0.01 for colour data
    tau_decay: float = 0.0139
    tau_min: float = 0.5


@dataclass
class FitHistory:
    """What :func:`fit` returns: the prior's history and, per VAE epoch, the mean training terms and the
    validation bound (−ELBO, nats per image)."""

    prior: PriorHistory | None = None
    train: list[dict] = field(default_factory=list)
    val_bound: list[float] = field(default_factory=list)


def _split(n: int, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    held = max(1, round(n * fraction)) if n > 1 else 0
    return order[held:], order[:held] if held else order


def _targets(model, x: torch.Tensor) -> torch.Tensor:
    """Dynamic binarisation (a fresh Bernoulli draw per use) for binarised data, else the images."""
    return torch.bernoulli(x) if model.config.binarize else x


@torch.no_grad()
def validation_bound(model, images: torch.Tensor, parse: Latents, batch_size: int = 500) -> float:
    """One-sample estimate of −ELBO (nats per image, an upper bound on −log p(x) in expectation) with hard
    latents, at the posterior's own distribution (no relaxation)."""
    total = 0.0
    for start in range(0, len(images), batch_size):
        x = _targets(model, images[start:start + batch_size])
        total += objective(model, x, parse[start:start + batch_size], tau=1.0, hard=True).negative_elbo.sum().item()
    return total / len(images)


def fit(model, images: torch.Tensor, config: FitConfig | None = None, *, progress: bool = True,
        callback=None) -> FitHistory:
    """Train ``model`` on ``images``: part bank, parse, prior pretraining, then the VAE with the prior frozen.

    Args:
        model: an NPDraw (trained in place).
        images: (N, C, H, W) float in [0, 1], checked by the caller, on the model's device.
        config: hyper-parameters; :class:`FitConfig` defaults when None.
        progress: progress bars.
        callback: called as ``callback(epoch, history)`` after each VAE epoch.
    Returns:
        The history of losses.
    """
    config = config or FitConfig()
    colour = model.config.channels == 3
    parse_weight = config.parse_weight if config.parse_weight is not None else (500.0 if colour else 50.0)
    rate = config.substitution_rate if config.substitution_rate is not None else (0.01 if colour else 0.005)
    generator = torch.Generator().manual_seed(config.seed)
    train_idx, val_idx = _split(len(images), config.val_fraction, generator)
    canvas_images = to_canvas(images, model.config.canvas_size)
    history = FitHistory()

    if config.fit_bank:
        model.bank.fit(canvas_images[train_idx], model.grid, empty_threshold=model.config.empty_threshold,
                       seed=config.seed)
        logger.info("stage 1: part bank of %d parts fitted", model.bank.num_parts)
    parsed = parse(canvas_images, model.bank, model.grid, empty_threshold=model.config.empty_threshold)
    logger.info("stage 2: %d images parsed, %.1f drawn steps per image", len(images),
                parsed.present.sum(1).mean().item())
    if config.fit_prior:
        history.prior = pretrain_prior(model.prior, model.bank, parsed[train_idx], parsed[val_idx],
                                       epochs=config.prior_epochs, batch_size=config.prior_batch_size,
                                       lr=config.prior_lr, seed=config.seed, progress=progress)

    # Stage 4: the VAE, prior frozen (eval mode: no dropout).
    model.prior.eval().requires_grad_(False)
    optimizer = torch.optim.Adam([
        {"params": model.encoder.parameters(), "lr": config.encoder_lr},
        {"params": model.decoder.parameters(), "lr": config.decoder_lr},
    ])
    torch.manual_seed(config.seed)
    for epoch in range(config.epochs):
        model.encoder.train()
        model.decoder.train()
        tau = gumbel_temperature(epoch, config.tau_decay, config.tau_min)
        substitution = substitution_probability(epoch, rate)
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        sums = dict(loss=0.0, reconstruction=0.0, kl=0.0, parse_ce=0.0)
        batches = range(0, len(order), config.batch_size)
        for start in tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False):
            index = order[start:start + config.batch_size]
            terms = objective(model, _targets(model, images[index]), parsed[index.to(parsed.ids.device)], tau=tau,
                              substitution=substitution)
            loss = (terms.negative_elbo + parse_weight * terms.parse_ce).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for key, value in (("loss", loss), ("reconstruction", terms.reconstruction.mean()),
                               ("kl", terms.kl.mean()), ("parse_ce", terms.parse_ce.mean())):
                sums[key] += value.item()
        history.train.append({k: v / len(batches) for k, v in sums.items()} | {"tau": tau,
                                                                             "substitution": substitution})
        model.eval()
        history.val_bound.append(validation_bound(model, images[val_idx], parsed[val_idx.to(parsed.ids.device)]))
        logger.info("epoch %d: loss %.2f, reconstruction %.2f, KL %.2f, parse CE %.3f; validation bound %.2f nats",
                    epoch + 1, *(history.train[-1][k] for k in ("loss", "reconstruction", "kl", "parse_ce")),
                    history.val_bound[-1])
        if callback is not None:
            callback(epoch, history)
    model.eval()
    return history
