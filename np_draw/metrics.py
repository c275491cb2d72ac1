"""Evaluation: the importance-sampled likelihood bound, the Fréchet distance in a named feature space, and PSNR.

The bound follows Burda et al. (IWAE): with z_s ~ q(z | x),
log p(x) >= E[log (1/S) sum_s p(x | z_s) p(z_s) / q(z_s | x)], tighter as S grows and exact in the limit. NP-DRAW's
latents are discrete, so every term is an exact probability; no relaxation enters.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm.auto import tqdm

from .errors import (
    CorruptWeightsError,
    InvalidInputError,
    InvalidTypeError,
    MissingFileError,
    UnwritablePathError,
    check_count,
    check_flags,
    check_path,
    check_seed,
)
from .features import ARCHITECTURES, feature_network
from .images import (
    ImageSource,
    TensorImages,
    as_image_tensor,
    check_images,
    first_image_side,
    image_source,
    is_array_file,
    to_canvas,
)
from .likelihoods import Bernoulli
from .memory import physical_memory
from .model import NPDraw, check_model
from .model_files import tensors_writer, write_together
from .networks import evaluating

__all__ = ["FID", "NLL", "FeatureStatistics", "default_features", "evaluate", "feature_statistics", "fid",
           "frechet_distance", "nll", "parse_psnr", "psnr", "reconstruction_psnr"]


@dataclass
class NLL:
    """Per-image bounds on the negative log-likelihood.

    nats: (N,) upper bounds on −log p(x) in nats. num_dims: values per image (C·H·W). num_samples: S.
    """

    nats: torch.Tensor
    num_dims: int
    num_samples: int

    @property
    def bits_per_dim(self) -> torch.Tensor:
        """(N,) the bounds in bits per dimension."""
        return self.nats / (self.num_dims * math.log(2))

    @property
    def mean_nats(self) -> float:
        """The mean bound in nats per image."""
        return self.nats.mean().item()

    @property
    def mean_bits_per_dim(self) -> float:
        """The mean bound in bits per dimension."""
        return self.bits_per_dim.mean().item()


def _binarised(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Binary images as they are (drawing nothing from ``generator``); grey ones binarised as binarised MNIST is."""
    if ((images == 0) | (images == 1)).all():
        return images
    return torch.bernoulli(images.cpu(), generator=generator).to(images.device)


# The values of canvas history (T canvases per draw) one pass of the bound holds, about 200 MB in float32.
_PASS_VALUES = 50_000_000


@torch.no_grad()
def nll(model: NPDraw, images: Any, num_samples: int = 50, *, batch_size: int | None = None, seed: int = 0,
        progress: bool = True) -> NLL:
    """The importance-sampled bound on −log p(x) of each image.

    Args:
        model: an NPDraw (evaluated in eval mode; its mode is restored).
        images: (N, C, H, W) uint8 or float in [0, 1] at the model's size. For a Bernoulli likelihood (MNIST,
            Omniglot; whatever ``config.binarize`` says: it is a distribution over binary images only) grey images
            are binarised once by a Bernoulli draw seeded by ``seed``; binary images are used as given.
        num_samples: posterior draws per image, S (the paper: 50); larger is tighter.
        batch_size: images per forward pass (default: as many as keep the prior's canvas history near 200 MB). When
            ``num_samples`` alone exceeds that (S > 1,771 for MNIST, 254 for CIFAR-10 and CelebA), images are scored
            one at a time and each one's S draws in several passes, whatever ``batch_size``.
        seed: seeds the binarisation and the posterior draws: the same seed gives the same numbers for the same
            images in the same order (not for a subset or another order: the draws come from one stream, in order;
            the batch size and the passes do not change them, beyond float rounding), whatever the model's dtype.
        progress: a progress bar.
    Returns:
        :class:`NLL` with per-image bounds in nats (``.nats``) and bits per dimension (``.bits_per_dim``).

    Example:
        >>> bound = nll(NPDraw.from_pretrained("mnist"), test_images, num_samples=50)  # doctest: +SKIP
        >>> bound.mean_nats  # doctest: +SKIP
    """
    check_model(model)
    num_samples = check_count(num_samples, "num_samples")
    check_flags(progress=progress)
    _check_log_weights_fit(num_samples)
    cfg = model.config
    draws = max(1, _PASS_VALUES // (cfg.num_steps * cfg.channels * cfg.canvas_size ** 2))
    if batch_size is None:
        batch_size = max(1, draws // num_samples)
    batch_size = check_count(batch_size, "batch_size")
    generator = torch.Generator().manual_seed(check_seed(seed))
    # float32 whatever the model's dtype, so that the binarisation does not depend on it: a float64 draw takes other
    # bits from the generator (another binarisation for the same seed), a bfloat16 one draws from rounded grey levels
    x = model.prepare_images(images, dtype=torch.float32)
    if isinstance(model.likelihood, Bernoulli):
        # Grey targets would give a cross-entropy that is no log-probability (and so no bound), even for a model
        # trained on them (binarize=False).
        x = _binarised(x, generator)
    x = x.to(device=model.device, dtype=model.dtype)
    # More draws than a pass holds: one image at a time, its draws in pieces (S = 2,000 for one CIFAR-10 image took
    # 4.6 GB at once, S = 10,000 five times that); the noise comes from the stream in the same order, so the pieces
    # draw the same latents.
    pieces = [min(draws, num_samples - start) for start in range(0, num_samples, draws)]
    if len(pieces) > 1:
        batch_size = 1
    bounds = []
    with evaluating(model), tqdm(total=len(x), desc="nll", disable=not progress, leave=False) as bar:
        for chunk in x.split(batch_size):
            log_w = torch.cat([model.log_weights(chunk, piece, generator).double() for piece in pieces], 1)
            bounds.append(math.log(num_samples) - torch.logsumexp(log_w, 1))
            bar.update(len(chunk))
    return NLL(torch.cat(bounds).float().cpu(), num_dims=x[0].numel(), num_samples=num_samples)


def _check_log_weights_fit(num_samples: int) -> None:
    """InvalidInputError before any work when one image's ``num_samples`` log-weights (float64, held twice while
    they are gathered) need more than the machine's memory: such a call ran on for hours and was then killed."""
    memory = physical_memory()
    if memory is not None and 16 * num_samples > memory:
        raise InvalidInputError(f"num_samples={num_samples:,} importance samples of one image take "
                                f"{16 * num_samples / 2**30:,.0f} GiB of log-weights, more than this machine's "
                                f"{memory / 2**30:,.0f} GiB of memory (the paper uses 50)")


@dataclass
class FeatureStatistics:
    """Mean (D,) and covariance (D, D) of a feature network's activations over a set of images, in float64."""

    mean: torch.Tensor
    covariance: torch.Tensor
    count: int
    features: str

    def save(self, path: str | Path) -> Path:
        """Write to a safetensors file (the feature network's name and the count go in its metadata); returns the
        path. UnwritablePathError naming it when it cannot be written (a missing folder, a folder at that path)."""
        path = check_path(path)
        # NumPy arrays too (e.g. pytorch-fid's mu and sigma), as frechet_distance takes them
        tensors = {"mean": torch.as_tensor(self.mean).contiguous(),
                   "covariance": torch.as_tensor(self.covariance).contiguous()}
        metadata = {"count": str(self.count), "features": self.features}
        try:
            # Whole or not at all, as model files are: safetensors' own error for a missing folder or a folder in the
            # way named only a temporary file of its own ("/missing/.tmpXXXX")
            write_together({path: tensors_writer(path, tensors, metadata)})
        except UnwritablePathError:  # the folder does not take files, or the disk is full: said already
            raise
        except OSError as error:  # a folder in the way of the rename
            raise UnwritablePathError(f"cannot write the FeatureStatistics file {str(path)!r}: {error}") from error
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureStatistics:
        """Read statistics written by :meth:`save`."""
        from safetensors import safe_open

        path = Path(path).expanduser()
        if not path.is_file():
            raise MissingFileError(f"no FeatureStatistics file at {str(path)!r}")
        try:
            with safe_open(str(path), "pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(path)
        except SafetensorError as error:
            raise CorruptWeightsError(f"{path} is not a FeatureStatistics file: not readable as safetensors "
                                      f"({error})") from error
        if "features" not in metadata or "count" not in metadata:
            raise CorruptWeightsError(f"{path} is not a FeatureStatistics file: its metadata lacks 'features' "
                                      "and 'count'")
        if not {"mean", "covariance"} <= tensors.keys():
            raise CorruptWeightsError(f"{path} is not a FeatureStatistics file: it lacks the tensors 'mean' and "
                                      f"'covariance', got {sorted(tensors)}")
        mean, covariance = tensors["mean"], tensors["covariance"]
        if mean.ndim != 1 or tuple(covariance.shape) != (len(mean), len(mean)):
            raise CorruptWeightsError(f"{path} is not a FeatureStatistics file: a mean (D,) and a covariance (D, D) "
                                      f"are expected, got {tuple(mean.shape)} and {tuple(covariance.shape)}")
        # Digits few enough for int(): 5,000 of them raised its ValueError (Python's limit on the digits it
        # converts), not this error
        count = metadata["count"]
        if not count.isdecimal() or len(count) > 30:
            got = repr(count) if len(count) <= 40 else f"{count[:20]!r}... ({len(count)} characters)"
            raise CorruptWeightsError(f"{path} is not a FeatureStatistics file: its metadata's count must be a whole "
                                      f"number, got {got}")
        return cls(mean, covariance, int(count), metadata["features"])


def _network(features: str | torch.nn.Module) -> torch.nn.Module:
    if isinstance(features, str):
        return feature_network(features)
    if not isinstance(features, torch.nn.Module) or not callable(getattr(features, "features", None)):
        raise InvalidTypeError(f"features must be a shipped network's name ('cnn-mnist', 'cnn-cifar10') or a module "
                               f"with a features(images) method, got {type(features).__name__}")
    return features


@torch.no_grad()
def feature_statistics(images: Any, features: str | torch.nn.Module = "cnn-mnist", *, batch_size: int = 500,
                       progress: bool = True) -> FeatureStatistics:
    """Mean and covariance of a feature network's activations over ``images``.

    Args:
        images: (N, C, H, W), (N, H, W, C) or (N, H, W), uint8 or float in [0, 1], N >= 2, any size and 1 or 3
            channels (the network converts); or PIL images or a folder of image files, cut to their centre squares
            and read at the first one's size (up to 256 px, or the network's size if larger; the others resized to
            it), which the network then resizes as it does tensors of that size; or an :class:`ImageSource`
            (:func:`np_draw.images.image_source`), read a batch at a time.
        features: a shipped network's name ("cnn-mnist", "cnn-cifar10"), or a module with a ``features(images)``
            method returning (N, D) (e.g. :class:`np_draw.features.FeatureNetwork` or the Inception network), run
            in eval mode (its own mode is restored).
        batch_size: images per forward pass.
        progress: a progress bar.
    Returns:
        :class:`FeatureStatistics` in float64.
    """
    network, batch_size = _network(features), check_count(batch_size, "batch_size")
    check_flags(progress=progress)
    if isinstance(images, (torch.Tensor, np.ndarray)):
        # Layouts as the model reads them (NHW, NHWC), for whichever of 1 or 3 channels the array holds.
        shape = tuple(images.shape)
        channels = 3 if len(shape) == 4 and 3 in (shape[1], shape[-1]) else 1
        images = as_image_tensor(images, channels=channels, size=shape[-2])  # H of NCHW and NHW, W of NHWC
        shape = tuple(images.shape)
        if len(shape) != 4 or shape[1] not in (1, 3) or shape[2] != shape[3]:
            raise InvalidInputError(f"images must have shape (N, 1 or 3, H, H) (NCHW), got {shape}")
        source: ImageSource = TensorImages(check_images(images, channels=shape[1], size=shape[-1]))
    elif isinstance(images, ImageSource):
        # Already checked at its own size and channels, which the network converts as it does a tensor's: read a
        # batch at a time as it is (image_source would refuse it for not being at the network's size).
        source = images
    else:
        # PIL images, a folder, a dataset: read as RGB (the network makes grey of them as it needs), a folder or a
        # map-style dataset a batch at a time (50,000 images at Inception's 299 px would take 13 GB at once), at the
        # side the docstring says: read at the network's size by PIL's bicubic, 56 px MNIST digits were 0.9 FID from
        # the same digits as a tensor (4.5 between two halves of the test set).
        size = getattr(network, "size", 299)
        side = first_image_side(images)
        source = image_source(images, channels=3, size=size if side is None else min(side, max(size, 256)))
    if len(source) < 2:
        raise InvalidInputError(f"images must hold at least 2 images for the features' covariance (FID), got "
                                f"{len(source)}")
    # Images in the network's device and floating dtype (a half-precision or float64 network failed on float32 ones)
    weight = next((t for t in itertools.chain(network.parameters(), network.buffers()) if t.is_floating_point()),
                  None)
    device, dtype = (torch.device("cpu"), torch.float32) if weight is None else (weight.device, weight.dtype)
    # In eval mode whatever mode the network came in (e.g. just trained): in training mode BatchNorm normalises each
    # batch by its own statistics (an FID that moves with batch_size) and overwrites its running statistics.
    with evaluating(network):
        rows = [network.features(chunk.to(device=device, dtype=dtype)).double().cpu()
                for chunk in tqdm(source.chunks(size=batch_size), total=math.ceil(len(source) / batch_size),
                                  desc="features", disable=not progress, leave=False)]
    f, label = torch.cat(rows), _label(network)
    if not torch.isfinite(f).all():
        raise InvalidInputError(f"the feature network {label!r} gave {int((~torch.isfinite(f)).sum())} NaN or inf "
                                "activations for these images")
    return FeatureStatistics(f.mean(0), torch.cov(f.T), len(f), label)


def _label(network: torch.nn.Module) -> str:
    return getattr(network, "name", type(network).__name__)


def frechet_distance(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½) between two Gaussians.

    The trace of the matrix square root is computed as Tr((Σa^½ Σb Σa^½)^½), a symmetric positive semi-definite
    matrix whose eigenvalues are real and non-negative, which is stable where Σa Σb itself is not symmetric. Computed in
    float64 whatever the statistics hold (tensors or NumPy arrays, e.g. pytorch-fid's ``mu`` and ``sigma``).
    """
    if not isinstance(a, FeatureStatistics) or not isinstance(b, FeatureStatistics):
        raise InvalidTypeError(f"a and b must be FeatureStatistics (from feature_statistics or FeatureStatistics.load), "
                               f"got {type(a).__name__} and {type(b).__name__}")
    if a.features != b.features:
        raise InvalidInputError(f"the statistics come from different feature networks: {a.features!r} and "
                                f"{b.features!r}")
    # In float64 on a's device whatever they were given in (float32 ones, e.g. from NumPy, failed beside float64 ones)
    mean_a, cov_a = _moments(a, "a", None)
    mean_b, cov_b = _moments(b, "b", mean_a.device)
    if len(mean_a) != len(mean_b):
        raise InvalidInputError(f"the statistics have different dimensions: {len(mean_a)} and {len(mean_b)} features")
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * middle
    return max(distance.item(), 0.0)


def _moments(stats: FeatureStatistics, name: str, device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
    mean, covariance = (torch.as_tensor(value).to(device=device, dtype=torch.float64)
                        for value in (stats.mean, stats.covariance))
    if mean.ndim != 1 or tuple(covariance.shape) != (len(mean), len(mean)):
        raise InvalidInputError(f"{name} must hold a mean (D,) and a covariance (D, D), got {tuple(mean.shape)} and "
                                f"{tuple(covariance.shape)}")
    if not (torch.isfinite(mean).all() and torch.isfinite(covariance).all()):
        raise InvalidInputError(f"{name}'s statistics hold NaN or inf values")
    return mean, covariance


@dataclass
class FID:
    """A Fréchet distance and the feature space it was measured in: ``label`` is e.g. "FID-cnn-mnist"; only
    Inception-v3 pool3 features give "FID" comparable with published numbers."""

    value: float
    label: str


def fid(samples: Any, reference: Any, features: str | torch.nn.Module | None = None, *, batch_size: int = 500,
        progress: bool = True) -> FID:
    """The Fréchet distance between the feature statistics of ``samples`` and ``reference``.

    Args:
        samples: images in any form :func:`feature_statistics` takes, or their :class:`FeatureStatistics`.
        reference: the same kinds (a folder of images included), or the path of statistics saved with
            :meth:`FeatureStatistics.save` (precompute a data set's statistics once and reuse the file).
        features: a shipped network's name ("cnn-mnist" for grey digits and characters, "cnn-cifar10" for RGB
            images), or a module with ``features(images) -> (N, D)``, e.g. from
            :func:`np_draw.inception.inception_v3`; None is the shipped network of the statistics given beside
            images, else "cnn-mnist". Statistics given beside it must be of the same network.
        batch_size: images per forward pass.
        progress: progress bars.
    Returns:
        :class:`FID` with the value and its label ("FID-" + the network's name).
    """
    check_flags(progress=progress)

    def saved(item: Any, name: str) -> FeatureStatistics | None:
        """``item``'s statistics when it is statistics or the path of a file of them; None for images."""
        if isinstance(item, FeatureStatistics):
            return item
        if isinstance(item, (str, Path)) and not (path := Path(item).expanduser()).is_dir():
            if not path.is_file():
                raise MissingFileError(f"{name} must be a folder of images or a FeatureStatistics file, got "
                                       f"{str(item)!r}: nothing there")
            if is_array_file(path):  # else read as safetensors: "not readable (header too large)", naming no images
                raise InvalidInputError(f"{name} must be a folder of images, images, or a FeatureStatistics file, "
                                        f"got the array file {str(item)!r}: pass its images "
                                        "(numpy.load(path)['images'])")
            try:
                return FeatureStatistics.load(path)
            except CorruptWeightsError as error:
                raise CorruptWeightsError(f"{name}: {error}") from error
        return None

    given = {"samples": saved(samples, "samples"), "reference": saved(reference, "reference")}
    if features is None:
        # Saved statistics say their network: the images beside them are measured with it, so that a file of
        # cnn-cifar10 statistics compares with images as it is (the images were measured with cnn-mnist, and the
        # two refused as of different networks, after the images' features had been computed).
        named = {stats.features for stats in given.values() if stats is not None}
        if len(named) == 1 and None in given.values():
            (label,) = named
            if label not in ARCHITECTURES:
                name = next(name for name, stats in given.items() if stats is not None)
                raise InvalidInputError(f"{name} holds statistics of the {label} features, which are not a shipped "
                                        f"network's: pass features= that network (for inception-v3, "
                                        "np_draw.inception.inception_v3(weights_path)) to measure the images with it")
            features = label
    # Loaded only for images (saved statistics say their network), and once
    network = functools.cache(lambda: _network("cnn-mnist" if features is None else features))
    if isinstance(features, str) and features not in ARCHITECTURES and None in given.values():
        # An unknown name is refused as such (naming the known ones), not as another network's statistics; beside
        # statistics only it just names their network ("inception-v3"), and nothing is loaded
        network()
    if features is not None:  # saved statistics say their network; one asked for must be it, before any work
        asked = features if isinstance(features, str) else _label(network())
        for name, stats in given.items():
            if stats is not None and stats.features != asked:
                raise InvalidInputError(f"{name} are statistics of the {stats.features} features, and features="
                                        f"{asked!r} was asked for: compute them again with it, or leave features out")
    a, b = (feature_statistics(item, network(), batch_size=batch_size, progress=progress) if stats is None else stats
            for item, stats in ((samples, given["samples"]), (reference, given["reference"])))
    return FID(frechet_distance(a, b), f"FID-{a.features}")


def psnr(reconstruction: torch.Tensor, target: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, 20·log10(MAX) − 10·log10(MSE): (N, ...) and (N, ...) of one shape -> (N,) float32 at
    least; integer images (uint8: give ``max_value=255``; levels above ``max_value`` are an error) are compared as
    floats, and half-precision ones in float32 (bfloat16's mean squared error is good to about 0.1 dB). A mean
    squared error under 1e-10 counts as 1e-10, so identical images score 100 dB + 20·log10(MAX), not infinity."""
    if not isinstance(reconstruction, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise InvalidTypeError(f"reconstruction and target must be torch tensors, got {type(reconstruction).__name__} "
                               f"and {type(target).__name__}")
    if isinstance(max_value, torch.Tensor) and max_value.numel() == 1:  # e.g. images.max()
        max_value = max_value.item()
    if isinstance(max_value, bool) or not isinstance(max_value, numbers.Real) or not 0 < max_value < math.inf:
        raise InvalidInputError(f"max_value must be a positive finite number (1.0 for images in [0, 1], 255 for "
                                f"uint8), got {max_value!r}")
    if reconstruction.shape != target.shape or reconstruction.ndim < 2 or math.prod(reconstruction.shape[1:]) == 0:
        raise InvalidInputError(f"reconstruction and target must have one shape (N, ...) with pixels, got "
                                f"{tuple(reconstruction.shape)} and {tuple(target.shape)}")
    for name, images in (("reconstruction", reconstruction), ("target", target)):
        # complex images lost their imaginary part with a warning; NaN or inf gave a NaN score
        if images.is_complex():
            raise InvalidTypeError(f"{name} must be real images, got dtype {images.dtype}")
        if images.device.type == "meta":
            raise InvalidInputError(f"{name} is on the 'meta' device, which holds shapes without data")
        if images.is_floating_point() and not torch.isfinite(images).all():
            raise InvalidInputError(f"{name} must be finite, got {int((~torch.isfinite(images)).sum())} NaN or inf "
                                    "values")
        # uint8 levels against the default max_value=1 (or against floats in [0, 1]) scored tens of dB below zero
        # with no error; a level above MAX cannot be a pixel of the scale MAX says
        if not images.is_floating_point() and images.numel() and (top := images.max().item()) > max_value:
            raise InvalidInputError(f"{name} holds integer levels up to {top}, above max_value={max_value!r}: for "
                                    f"uint8 images give max_value=255 with both images on the 0..255 scale, or "
                                    f"scale them to [0, 1] first (images / 255)")
    if not reconstruction.is_floating_point() or not target.is_floating_point():  # uint8 differences wrap around
        reconstruction, target = reconstruction.double(), target.double()
    elif reconstruction.dtype in (torch.float16, torch.bfloat16) or target.dtype in (torch.float16, torch.bfloat16):
        reconstruction, target = reconstruction.float(), target.float()
    mse = ((reconstruction - target) ** 2).flatten(1).mean(1)
    return 20 * torch.log10(torch.tensor(max_value)) - 10 * torch.log10(mse.clamp_min(1e-10))


def _psnr_by_batch(model: NPDraw, images: Any, batch_size: int, pair: Any, progress: bool, desc: str) -> torch.Tensor:
    """(N,) PSNR of ``pair(x) -> (result, target)`` over ``images`` a batch at a time, with a progress bar."""
    check_model(model)
    batch_size = check_count(batch_size, "batch_size")
    check_flags(progress=progress)
    x = model.prepare_images(images)
    # A bar: reconstructing MNIST's 10,000 test images took 11 s on one CPU thread (CIFAR-10's twice that), the last
    # and silent part of evaluate, after the bars of the bound, the samples and the features
    with evaluating(model):
        return torch.cat([psnr(*pair(chunk)).cpu()
                          for chunk in tqdm(x.split(batch_size), total=math.ceil(len(x) / batch_size), desc=desc,
                                            disable=not progress, leave=False)])


@torch.no_grad()
def parse_psnr(model: NPDraw, images: Any, *, batch_size: int = 500, progress: bool = True) -> torch.Tensor:
    """PSNR in dB of each image's parse canvas against the image at canvas size: (N,). ``progress``: a progress
    bar."""
    return _psnr_by_batch(model, images, batch_size,
                          lambda x: (model.parse(x).canvas, to_canvas(x, model.config.canvas_size)), progress, "parse")


@torch.no_grad()
def reconstruction_psnr(model: NPDraw, images: Any, *, batch_size: int = 500, progress: bool = True) -> torch.Tensor:
    """PSNR in dB of each image's reconstruction decode(encode(x)) (posterior modes, mean pixels): (N,).
    ``progress``: a progress bar."""
    return _psnr_by_batch(model, images, batch_size, lambda x: (model.reconstruct(x), x), progress, "reconstruction")


def default_features(model: NPDraw) -> str:
    """The shipped feature network for a model's images: "cnn-mnist" for grey, "cnn-cifar10" for RGB."""
    return "cnn-mnist" if model.config.channels == 1 else "cnn-cifar10"


def evaluate(model: NPDraw, images: Any, *, num_samples: int = 50, features: str | torch.nn.Module | None = None,
             num_generated: int | None = None, seed: int = 0, binarised_fid: bool = False,
             progress: bool = True) -> dict[str, float]:
    """The evaluation table of a model on test images: NLL bound, FID, parse and reconstruction PSNR.

    Args:
        model: an NPDraw.
        images: (N, C, H, W) uint8 or float in [0, 1] test images.
        num_samples: importance samples per image for the NLL bound (the paper: 50).
        features: the FID feature network (a shipped name or a module with ``features``, e.g.
            :func:`np_draw.inception.inception_v3`); None picks :func:`default_features`.
        num_generated: how many samples (>= 2) the FID compares with ``images`` (default: as many as there are
            images).
        seed: seeds the binarisation, the posterior draws and the generated samples.
        binarised_fid: the FID between binarised samples (pixels drawn from p(x | canvas)) and the binarised test
            images (the NLL's binarisation), the paper's protocol for MNIST and Omniglot (a Bernoulli model only);
            False compares the samples' mean pixels with the images as given.
        progress: progress bars.
    Returns:
        {"nll_nats", "nll_bits_per_dim", "<FID label>", "parse_psnr_db", "reconstruction_psnr_db"} as floats:
        means over the images; the FID key names its feature network, e.g. "FID-cnn-mnist".
    """
    check_model(model)
    check_flags(binarised_fid=binarised_fid, progress=progress)
    if binarised_fid and not isinstance(model.likelihood, Bernoulli):
        raise InvalidInputError(f"binarised_fid=True is the protocol of binarised data (MNIST, Omniglot): it needs a "
                                f"Bernoulli model, got likelihood {model.config.likelihood!r}")
    network = _network(default_features(model) if features is None else features)
    x = model.prepare_images(images, dtype=torch.float32)  # the binarisation and the FID's reference: as in nll
    num_generated = len(x) if num_generated is None else check_count(num_generated, "num_generated")
    if min(len(x), num_generated) < 2:
        raise InvalidInputError(f"the FID needs at least 2 images and 2 samples (num_generated), got {len(x)} images "
                                f"and num_generated={num_generated}")
    # Sampled before the bound (their draws are apart): too many samples for this machine's memory are refused at
    # once, not after the minutes of the bound
    try:
        generated = model.sample(num_generated, generator=torch.Generator().manual_seed(seed),
                                 sample_pixels=binarised_fid, progress=progress).images
    except InvalidInputError as error:
        raise InvalidInputError(f"num_generated={num_generated:,}: {error}") from error
    bound = nll(model, x, num_samples, seed=seed, progress=progress)
    reference = _binarised(x, torch.Generator().manual_seed(seed)) if binarised_fid else x  # what nll scored
    distance = fid(generated, reference, network, progress=progress)
    return {"nll_nats": bound.mean_nats, "nll_bits_per_dim": bound.mean_bits_per_dim, distance.label: distance.value,
            "parse_psnr_db": parse_psnr(model, x, progress=progress).mean().item(),
            "reconstruction_psnr_db": reconstruction_psnr(model, x, progress=progress).mean().item()}
