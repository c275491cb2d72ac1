"""The pieces of the stage-2 objective (spec §7) that need no model: the relaxed posterior sample, the reference
code's parse substitution, the analytic per-step KL (supplement eq. 2), the terms, and their schedules.
:meth:`np_draw.NPDraw.objective` puts them together with the model's canvas, decoder and prior."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .latents import Latents, StepLogits


def gumbel_temperature(epoch: int, decay: float = 0.0139, minimum: float = 0.5, start: float = 1.0) -> float:
    """τ = max(start·exp(−decay·epoch), minimum) (reference code: start 1)."""
    return max(start * math.exp(-decay * epoch), minimum)


def substitution_probability(epoch: int, rate: float, start: float = 1.0) -> float:
    """p_e = start·exp(−r·e(e+1)/2): the chance that an image's sampled latents are replaced by its parse
    (reference code: start 1)."""
    return start * math.exp(-rate * epoch * (epoch + 1) / 2)


@dataclass
class RelaxedLatents:
    """A differentiable posterior sample. ids: (N, T, B) soft Gumbel-softmax weights; locs: (N, T, L)
    straight-through one-hot; present: (N, T) straight-through {0, 1}."""

    ids: torch.Tensor
    locs: torch.Tensor
    present: torch.Tensor


def relaxed_sample(logits: StepLogits, tau: float, hard: bool = False) -> RelaxedLatents:
    """Sample from q with torch's global RNG (seeded by the caller); ``hard`` makes z_id one-hot too."""
    ids = F.gumbel_softmax(logits.ids, tau=tau, hard=hard)
    locs = F.gumbel_softmax(logits.locs, tau=tau, hard=True)
    p = torch.sigmoid(logits.present)
    hard = (torch.rand_like(p) < p).to(p.dtype)
    return RelaxedLatents(ids, locs, hard + p - p.detach())


def substitute(sample: RelaxedLatents, parse: Latents, mask: torch.Tensor) -> RelaxedLatents:
    """Replace the sample by the parse for the images where ``mask`` (N,) is True."""
    m = mask[:, None, None].to(sample.ids.dtype)
    ids = m * F.one_hot(parse.ids, sample.ids.shape[-1]).to(m) + (1 - m) * sample.ids
    locs = m * F.one_hot(parse.locs, sample.locs.shape[-1]).to(m) + (1 - m) * sample.locs
    present = m[..., 0] * parse.present.to(m) + (1 - m[..., 0]) * sample.present
    return RelaxedLatents(ids, locs, present)


def kl_per_step(q: StepLogits, p: StepLogits, present: torch.Tensor) -> torch.Tensor:
    """Analytic KL(q ‖ p) of each step: categorical KLs of z_id and z_loc times the sampled z_is, plus the
    Bernoulli KL of z_is. Returns (N, T) in nats, in float32 at least (float64 logits keep float64), as
    :meth:`StepLogits.log_prob` and the likelihoods compute: in bfloat16 a KL of a few hundred nats is off by up to
    a nat, which the validation bound adds to its float32 reconstruction."""
    dtype = torch.promote_types(q.ids.dtype, torch.float32)

    def categorical(q_logits: torch.Tensor, p_logits: torch.Tensor) -> torch.Tensor:
        log_q = F.log_softmax(q_logits.to(dtype), -1)
        return (log_q.exp() * (log_q - F.log_softmax(p_logits.to(dtype), -1))).sum(-1)

    q_present, p_present = q.present.to(dtype), p.present.to(dtype)
    log_q1, log_q0 = F.logsigmoid(q_present), F.logsigmoid(-q_present)
    log_p1, log_p0 = F.logsigmoid(p_present), F.logsigmoid(-p_present)
    kl_is = log_q1.exp() * (log_q1 - log_p1) + log_q0.exp() * (log_q0 - log_p0)
    return (categorical(q.ids, p.ids) + categorical(q.locs, p.locs)) * present.to(dtype) + kl_is


@dataclass
class Terms:
    """Per-image terms of the objective, (N,) each in nats: reconstruction −log p(x|z), KL against the prior, the
    posterior's cross-entropy towards the parse (−log q(parse | x)), and, when asked for, the decoder's
    −log p(x | the parse's canvas)."""

    reconstruction: torch.Tensor
    kl: torch.Tensor
    parse_ce: torch.Tensor
    parse_reconstruction: torch.Tensor | None = None

    @property
    def negative_elbo(self) -> torch.Tensor:
        """−ELBO = reconstruction + KL, per image: (N,) nats."""
        return self.reconstruction + self.kl
