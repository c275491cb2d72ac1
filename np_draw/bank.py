"""The non-parametric part bank (spec §3): k-means centroids of the non-empty patches of the training images."""

from __future__ import annotations

import logging

import torch
from einops import rearrange
from torch import nn

from .canvas import Grid
from .errors import InvalidInputError, InvalidTypeError, check_channels, check_count, check_seed

logger = logging.getLogger(__name__)

# Distances are computed this many points at a time so that N x B never has to fit in memory at once.
_CHUNK = 65536


def nearest(points: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and squared L2 distance to the nearest centroid.

    Args:
        points: (N, D). centroids: (B, D).
    Returns:
        (N,) int64 indices and (N,) squared distances.
    """
    c_sq = (centroids * centroids).sum(1)
    index = torch.empty(points.shape[0], dtype=torch.long, device=points.device)
    dist = torch.empty(points.shape[0], dtype=points.dtype, device=points.device)
    for start in range(0, points.shape[0], _CHUNK):
        chunk = points[start:start + _CHUNK]
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; the first term does not change the argmin.
        d = torch.addmm(c_sq, chunk, centroids.T, alpha=-2.0)
        value, index[start:start + _CHUNK] = d.min(1)
        dist[start:start + _CHUNK] = (value + (chunk * chunk).sum(1)).clamp_min_(0.0)
    return index, dist


def kmeans(points: torch.Tensor, k: int, *, generator: torch.Generator | None = None, max_iter: int = 100,
           tol: float = 1e-4) -> torch.Tensor:
    """Lloyd's k-means with k-means++ initialisation, on the device of ``points``.

    Args:
        points: (N, D) float, N >= k.
        k: number of centroids.
        generator: a CPU generator seeding the initialisation (same seed, same result).
        max_iter: at most this many Lloyd iterations.
        tol: stop when the mean squared distance improves by less than this fraction.
    Returns:
        (k, D) centroids. A centroid that loses all its points is moved to the point farthest from its centroid.
    """
    n, d = points.shape
    if n < k:
        raise InvalidInputError(f"kmeans needs at least k={k} points, got {n}")
    # k-means++: each new centroid is drawn with probability proportional to its squared distance.
    first = torch.randint(n, (1,), generator=generator).item()
    centroids = points.new_empty(k, d)
    centroids[0] = points[first]
    closest = ((points - centroids[0]) ** 2).sum(1)
    for i in range(1, k):
        weights = closest.cpu().double()
        if weights.sum() <= 0:  # fewer distinct points than k: repeat points, k-means keeps them.
            weights = torch.ones_like(weights)
        pick = torch.multinomial(weights, 1, generator=generator).item()
        centroids[i] = points[pick]
        closest = torch.minimum(closest, ((points - centroids[i]) ** 2).sum(1))

    previous = float("inf")
    for iteration in range(max_iter):
        index, dist = nearest(points, centroids)
        inertia = dist.mean().item()
        sums = points.new_zeros(k, d).index_add_(0, index, points)
        counts = torch.bincount(index, minlength=k).to(points.dtype)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
        if empty.any():
            far = dist.topk(int(empty.sum())).indices
            centroids[empty] = points[far]
        if iteration > 0 and previous - inertia <= tol * previous and not empty.any():
            break
        previous = inertia
    logger.info("k-means: %d points, k=%d, %d iterations, mean squared distance %.5f", n, k, iteration + 1,
                inertia)
    return centroids


class PartBank(nn.Module):
    """B parts of C x K x K pixels in [0, 1], stored in the buffer ``parts`` of shape (B, C, K, K)."""

    def __init__(self, num_parts: int, channels: int, part_size: int) -> None:
        # torch.zeros failed on a float or a negative size with its own TypeError or RuntimeError
        num_parts, part_size = check_count(num_parts, "num_parts"), check_count(part_size, "part_size")
        channels = check_channels(channels)
        super().__init__()
        self.register_buffer("parts", torch.zeros(num_parts, channels, part_size, part_size))

    @property
    def num_parts(self) -> int:
        """B."""
        return self.parts.shape[0]

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        """Parts selected by (soft) one-hot weights: (..., B) -> (..., C, K, K), a mixture for soft weights."""
        return torch.einsum("...b,bchw->...chw", weights, self.parts)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Parts by index: (...,) int64 -> (..., C, K, K)."""
        return self.parts[ids]

    @torch.no_grad()
    def fit(self, images: torch.Tensor, grid: Grid, *, empty_threshold: float = 0.01, seed: int = 0,
            max_patches: int | None = 200_000, max_iter: int = 100) -> PartBank:
        """Fit the parts by k-means over the non-empty grid patches of ``images``.

        Args:
            images: (N, C, S, S) float in [0, 1], S = grid.canvas_size, on the device to compute on.
            grid: the cells patches are cut from.
            empty_threshold: patches whose mean is below this are not used (they are never drawn).
            seed: seeds the patch subsample and the k-means++ initialisation.
            max_patches: k-means runs on a random subset of at most this many patches (None: all of them);
                200,000 patches pin 50-200 centroids well, and the fit stays fast.
            max_iter: Lloyd iterations at most.
        Returns:
            self, with ``parts`` replaced.
        """
        if not isinstance(grid, Grid):
            raise InvalidTypeError(f"grid must be a Grid (model.grid), got {type(grid).__name__}")
        if grid.part_size != self.parts.shape[-1]:  # k-means' centroids failed to reshape into the parts
            side = self.parts.shape[-1]
            raise InvalidInputError(f"grid must cut parts of the bank's {side} x {side} px, got a grid of "
                                    f"{grid.part_size} x {grid.part_size} px parts")
        size, channels = grid.canvas_size, self.parts.shape[1]
        if not isinstance(images, torch.Tensor):
            raise InvalidTypeError(f"images must be a torch.Tensor (N, {channels}, {size}, {size}), got "
                                   f"{type(images).__name__}")
        # Images of another size were cut into another number of patches and fitted without a word; uint8 ones
        # failed inside unfold
        if images.ndim != 4 or not images.is_floating_point() \
                or tuple(images.shape[1:]) != (channels, size, size):
            raise InvalidInputError(f"images must be a floating (N, {channels}, {size}, {size}) tensor in [0, 1] (the "
                                    f"grid's canvas size), got {tuple(images.shape)} {images.dtype}")
        max_iter = check_count(max_iter, "max_iter")  # 0 left k-means' result unset (an UnboundLocalError)
        if max_patches is not None:
            max_patches = check_count(max_patches, "max_patches")
        generator = torch.Generator().manual_seed(check_seed(seed))
        patches = rearrange(grid.patches(images), "n l c h w -> (n l) (c h w)")
        patches = patches[patches.mean(1) >= empty_threshold]
        if patches.shape[0] < self.num_parts:
            raise InvalidInputError(
                f"the images have {patches.shape[0]} non-empty patches, fewer than num_parts={self.num_parts}: "
                "give more images, a config with fewer parts, or fine-tune a pretrained model, which keeps its bank "
                "(np-draw fit --from NAME)"
            )
        if max_patches is not None and patches.shape[0] > max_patches:
            keep = torch.randperm(patches.shape[0], generator=generator)[:max_patches].to(patches.device)
            patches = patches[keep]
        centroids = kmeans(patches.float(), self.num_parts, generator=generator, max_iter=max_iter)
        self.parts.copy_(centroids.clamp(0, 1).reshape(self.parts.shape))
        return self
