"""Pixel likelihoods p(x | canvas): Bernoulli (binarised grey images), the discretised logistic and the
discretised mixture of logistics of PixelCNN++ (Salimans et al., 2017) over 256 levels.

Images are float in [0, 1] (NCHW); the logistic models work on [-1, 1] internally, as PixelCNN++ does.
Every ``log_prob`` returns the log-likelihood of each image summed over its pixels, in nats: (N,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from .errors import InvalidInputError, UnknownModelError

_BIN = 1.0 / 255.0  # half a bin in [-1, 1]


class Likelihood:
    """p(x | decoder output). ``num_params``: channels the decoder outputs; ``noise_channels``: channels of the
    uniform noise :meth:`sample` consumes (drawn by the caller, so that seeds work per image)."""

    num_params: int
    noise_channels: int

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | params), summed over pixels: x (N, C, H, W) in [0, 1] -> (N,) nats, float32. Computed in float32
        whatever the params' dtype (differentiably): in bfloat16 a CelebA image's ~47,000 nats are a multiple of 256,
        which hid a fine-tuning's gain from model selection and the bound."""
        return self._log_prob(params.float(), x.float())

    def _log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x | params]: (N, C, H, W) in [0, 1]."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x ~ p(x | params) from uniform noise (N, noise_channels, H, W): (N, C, H, W) in [0, 1], in the params'
        dtype. Computed in float32: in half precision the noise's clamp at 1 - 1e-5 rounds to 1 (an infinite
        logistic draw) and the 256 levels of a pixel are not all representable."""
        return self._sample(params.float(), noise.float()).to(params.dtype)

    def _sample(self, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Bernoulli(Likelihood):
    """One logit per pixel; x is expected binary (dynamically binarised), grey levels are allowed."""

    def __init__(self, channels: int) -> None:
        self.num_params = self.noise_channels = channels

    def _log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(params, x, reduction="none").flatten(1).sum(1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def _sample(self, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return (noise < torch.sigmoid(params)).to(params.dtype)


def _discretised_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log P(x) of a logistic discretised to 256 bins on [-1, 1]; the end bins take the tails."""
    centred = x - mean
    inv_scale = torch.exp(-log_scale)
    upper = inv_scale * (centred + _BIN)
    lower = inv_scale * (centred - _BIN)
    log_cdf_upper = upper - F.softplus(upper)  # log sigmoid(upper), for the bin at -1
    log_survival_lower = -F.softplus(lower)  # log (1 - sigmoid(lower)), for the bin at +1
    mass = torch.sigmoid(upper) - torch.sigmoid(lower)
    # Where the bin mass underflows, use the density at the centre times the bin width.
    mid = inv_scale * centred
    log_density = mid - log_scale - 2 * F.softplus(mid)
    log_mass = torch.where(mass > 1e-5, torch.log(mass.clamp_min(1e-12)), log_density - math.log(127.5))
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_survival_lower, log_mass))


def _logistic(mean: torch.Tensor, log_scale: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    u = noise.clamp(1e-5, 1 - 1e-5)
    return mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))


def _levels(x: torch.Tensor) -> torch.Tensor:
    """x in [0, 1] on the nearest of the 256 levels whose bins are scored: images held in bfloat16 are up to half a
    level off (exact levels are kept as they are)."""
    return torch.round(x * 255) / 255


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], rounded to the 256 levels."""
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 255.0


class DiscretisedLogistic(Likelihood):
    """A logistic per channel and pixel (mean and log-scale), discretised to 256 levels."""

    def __init__(self, channels: int) -> None:
        self.num_params, self.noise_channels = 2 * channels, channels

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_scale = params.chunk(2, dim=1)
        return mean, log_scale.clamp_min(-7.0)

    def _log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mean, log_scale = self._split(params)
        return _discretised_logistic_log_prob(2 * _levels(x) - 1, mean, log_scale).flatten(1).sum(1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The logistic's location clamped to [-1, 1], mapped to (N, C, H, W) in [0, 1]: E[x | params] for a
        location well inside; near 0 and 1, where the end bins take the tails, the discretised expectation lies
        further in (a location of 1.5 with scale 1 expects 0.80, not 1). What decode returns as the mean pixels."""
        return (self._split(params)[0].clamp(-1, 1) + 1) / 2

    def _sample(self, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return _to_unit(_logistic(*self._split(params), noise))


class LogisticMixture(Likelihood):
    """PixelCNN++'s discretised mixture of logistics over RGB, with linear dependence between channels.

    Per pixel and component: a mixture logit, 3 means, 3 log-scales and 3 coefficients (g on r; b on r and g).
    """

    def __init__(self, channels: int, num_mixtures: int) -> None:
        if channels != 3:
            raise InvalidInputError(f"the logistic mixture models RGB images (channels=3), got channels={channels}")
        self.num_mixtures = num_mixtures
        # Per component: a mixture logit, 3 means, 3 log-scales, 3 coefficients; noise: a Gumbel draw per
        # component to pick one, then one logistic draw per channel.
        self.num_params, self.noise_channels = 10 * num_mixtures, num_mixtures + 3

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """params (N, 10K, H, W) -> the mixture logits (N, K, H, W) and the components' raw means, log-scales and
        coefficients (N, 3, 3, K, H, W): (kind, channel, component); views for contiguous params."""
        k = self.num_mixtures
        return params[:, :k], rearrange(params[:, k:], "n (p c k) h w -> n p c k h w", p=3, c=3, k=k)

    @staticmethod
    def _coupled_means(means: torch.Tensor, coeffs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Means of (r, g, b) given the channels before: (N, 3, K, H, W), x (N, 3, 1, H, W) in [-1, 1]."""
        r = means[:, 0]
        g = means[:, 1] + coeffs[:, 0] * x[:, 0]
        b = means[:, 2] + coeffs[:, 1] * x[:, 0] + coeffs[:, 2] * x[:, 1]
        return torch.stack([r, g, b], dim=1)

    def _log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logit_weights, rest = self._split(params)
        means, log_scales, coeffs = rest[:, 0], rest[:, 1].clamp_min(-7.0), torch.tanh(rest[:, 2])
        x = (2 * _levels(x) - 1)[:, :, None]
        per_channel = _discretised_logistic_log_prob(x, self._coupled_means(means, coeffs, x), log_scales)
        per_pixel = torch.logsumexp(per_channel.sum(1) + F.log_softmax(logit_weights, dim=1), dim=1)
        return per_pixel.flatten(1).sum(1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The mixture's mean before discretisation (each component's channels coupled through their own means,
        weighted by the mixture), clamped to [-1, 1] and mapped to (N, C, H, W) in [0, 1]: E[x | params] where the
        components lie well inside; near 0 and 1, where the end bins take the tails, the discretised expectation
        lies further in. What decode returns as the mean pixels."""
        logit_weights, rest = self._split(params)
        means, coeffs = rest[:, 0], torch.tanh(rest[:, 2])
        # The mean of each component, the earlier channels set to their own component means.
        r = means[:, 0]
        g = torch.addcmul(means[:, 1], coeffs[:, 0], r)
        b = torch.addcmul(torch.addcmul(means[:, 2], coeffs[:, 1], r), coeffs[:, 2], g)
        weights = torch.softmax(logit_weights, dim=1)
        mixed = torch.stack([torch.linalg.vecdot(v, weights, dim=1) for v in (r, g, b)], dim=1)
        return mixed.clamp_(-1, 1).add_(1).div_(2)

    def _sample(self, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        logit_weights, rest = self._split(params)
        k = self.num_mixtures
        gumbel = -torch.log(-torch.log(noise[:, :k].clamp(1e-7, 1 - 1e-7)))
        pick = (logit_weights + gumbel).argmax(1)[:, None, None, None]  # (N, 1, 1, 1, H, W)
        mean, log_scale, coeff = rest.gather(3, pick.expand(-1, 3, 3, -1, -1, -1))[:, :, :, 0].unbind(1)
        log_scale, coeff = log_scale.clamp_min(-7.0), torch.tanh(coeff)
        u = noise[:, k:]
        r = _logistic(mean[:, 0], log_scale[:, 0], u[:, 0]).clamp(-1, 1)
        g = _logistic(mean[:, 1] + coeff[:, 0] * r, log_scale[:, 1], u[:, 1]).clamp(-1, 1)
        b = _logistic(mean[:, 2] + coeff[:, 1] * r + coeff[:, 2] * g, log_scale[:, 2], u[:, 2])
        return _to_unit(torch.stack([r, g, b], dim=1))


def make_likelihood(name: str, channels: int, num_mixtures: int = 10) -> Likelihood:
    """The likelihood called ``name`` ("bernoulli", "logistic", "logistic_mixture")."""
    if name == "logistic_mixture":
        return LogisticMixture(channels, num_mixtures)
    if name == "bernoulli":
        return Bernoulli(channels)
    if name == "logistic":
        return DiscretisedLogistic(channels)
    raise UnknownModelError(f"unknown likelihood {name!r}; known: bernoulli, logistic, logistic_mixture")
