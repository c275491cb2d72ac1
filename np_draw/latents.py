"""The latent variables of NP-DRAW: per step, what (z_id), where (z_loc) and whether (z_is) to draw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .errors import InvalidInputError, InvalidTypeError, check_temperature

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


class _Batch:
    """Batch-wise indexing, moving and concatenation of a dataclass of tensors (fields may be None)."""

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Self:
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value._map(fn) if isinstance(value, _Batch) else None if value is None else fn(value)
        return type(self)(**values)

    def __len__(self) -> int:
        return getattr(self, fields(self)[0].name).shape[0]

    def __getitem__(self, index) -> Self:
        return self._map(lambda t: t[index])

    def __eq__(self, other: object) -> bool:
        """Whether ``other`` is a batch of the same class whose fields are equal tensors (shape, dtype, device and
        values) or both None. The dataclass's own comparison took a tensor's truth value: an error for any batch."""
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None  # mutable, and equal by value

    def to(self, *args, **kwargs) -> Self:
        """Like ``torch.nn.Module.to`` (a device, a floating dtype, a tensor, ``non_blocking``, ``memory_format``;
        also ``copy``): every tensor moves to the device, a tensor argument's included; only floating tensors take
        the dtype (ids and locs stay integers), and only the 4-D canvas the memory format."""
        copy = kwargs.pop("copy", False)
        try:
            device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        except (TypeError, RuntimeError) as error:
            raise InvalidTypeError(f"{type(self).__name__}.to takes what torch.Tensor.to does: {error}") from error
        # A tensor argument gives its device, and its dtype only when floating; an integer dtype given as such would
        # turn present and the canvas into integers
        given = next((a for a in (*args, kwargs.get("tensor")) if isinstance(a, torch.Tensor)), None)
        if dtype is not None and not dtype.is_floating_point:
            if given is None:
                raise InvalidTypeError(f"{type(self).__name__}.to takes a floating dtype (ids and locs stay "
                                       f"integers), got {dtype}")
            dtype = None

        def move(t: torch.Tensor) -> torch.Tensor:
            layout = {"memory_format": memory_format} if memory_format is not None and t.ndim == 4 else {}
            if t.is_floating_point():
                return t.to(device, dtype, non_blocking=non_blocking, copy=copy, **layout)
            return t.to(device, non_blocking=non_blocking, copy=copy)
        return self._map(move)

    @classmethod
    def cat(cls, items: list[Self]) -> Self:
        """Concatenate along the batch; a field is kept only when every item has it."""
        # A Latents given for the list was iterated drawing by drawing (it has __len__ and __getitem__) and
        # concatenated into 1-D ids: a list or tuple of the class's batches, of one shape past the batch axis
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, cls) for item in items):
            got = type(items).__name__ if not isinstance(items, (list, tuple)) else \
                f"{type(items).__name__} of {sorted({type(item).__name__ for item in items})}"
            raise InvalidTypeError(f"{cls.__name__}.cat takes a list of {cls.__name__}, got {got}")
        if not items:
            raise InvalidInputError(f"{cls.__name__}.cat needs at least one {cls.__name__}, got none")
        values = {}
        for f in fields(cls):
            parts = [getattr(item, f.name) for item in items]
            if any(p is None for p in parts):
                values[f.name] = None
            elif isinstance(parts[0], _Batch):
                values[f.name] = type(parts[0]).cat(parts)
            else:
                shapes = [tuple(p.shape) for p in parts]
                if len({shape[1:] for shape in shapes}) > 1 or any(not shape for shape in shapes):
                    raise InvalidInputError(f"{cls.__name__}.cat needs {f.name} of one shape past the batch axis "
                                            f"(drawings of as many steps, of one model), got shapes {shapes}")
                values[f.name] = torch.cat(parts)
        return cls(**values)


def _same(a: torch.Tensor | _Batch | None, b: torch.Tensor | _Batch | None) -> bool:
    """Whether two fields of :meth:`_Batch.__eq__` are equal: both None, equal batches, or tensors of the same shape,
    dtype and device with equal values."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return a is b if a is None or b is None else a == b
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)


def gumbel(noise: torch.Tensor, num_parts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Uniform noise (..., B + L + 1) in (0, 1) -> float32 Gumbel noise for z_id (..., B) and z_loc (..., L), and
    z_is's threshold (...) kept uniform: what :meth:`StepLogits.draw` takes."""
    noise = noise.float()
    # In place on clamp's copy: each new tensor of a large batch's noise (8.6 MB for 128 CelebA drawings) was fresh
    # memory, a page fault per 4 KiB, and the transform ran up to 1.4x slower; the same values
    drawn = noise[..., :-1].clamp(torch.finfo(noise.dtype).tiny, 1 - 1e-7).log_().neg_().log_().neg_()
    return drawn[..., :num_parts], drawn[..., num_parts:], noise[..., -1]


_SMALLEST_TEMPERATURE = 2.0**-64  # logits up to 1.8e19 divided by it stay finite in float32


@dataclass(eq=False)  # _Batch's comparison
class StepLogits(_Batch):
    """Logits of the three per-step distributions, from the prior or the encoder.

    ids: (N, T, B). locs: (N, T, L). present: (N, T) Bernoulli logit of z_is.
    """

    ids: torch.Tensor
    locs: torch.Tensor
    present: torch.Tensor

    def sample(self, noise: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, ...]:
        """Draw (ids, locs, present) from uniform noise (..., B + L + 1) matching the logits' leading axes:
        Gumbel-max for z_id and z_loc, a threshold for z_is; the same noise always gives the same latents.

        The draw is computed in float32 whatever the logits' dtype (half-precision noise rounds to 1.0, and a Gumbel
        term of 16 bits swamps the logits); ``present`` comes back in the logits' dtype.
        """
        return self.draw(gumbel(noise, self.ids.shape[-1]), check_temperature(temperature))

    def draw(self, noise: tuple[torch.Tensor, torch.Tensor, torch.Tensor], temperature: float = 1.0, *,
             out: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
        """:meth:`sample` from noise already passed through :func:`gumbel` (the sampler transforms all its steps'
        noise at once). With ``out``, three tensors (the sampler's columns of a step), the draw is written into them
        and they are returned, present in ``out``'s dtype."""
        # float() is a call even on float32: a sampling step's logits skip it
        ids, locs, present = (x if x.dtype == torch.float32 else x.float() for x in (self.ids, self.locs, self.present))
        if temperature != 1:  # x / 1 is x: skipped, the draw is the same
            # At most a division by 2^-64: exact (a power of two), and the argmax and the sign test of temperature
            # -> 0 for logits apart by more than 1e-17 (exact ties are broken by the noise). Below 1e-38 float32
            # logits overflowed to inf, whose ties the first index won whatever the noise, and under 1e-45 the
            # temperature rounded to 0: NaN logits, never drawn.
            temperature = max(temperature, _SMALLEST_TEMPERATURE)
            ids, locs, present = ids / temperature, locs / temperature, present / temperature
        if not (isinstance(noise, tuple) and len(noise) == 3):
            raise InvalidTypeError(f"noise must be the three tensors gumbel(noise, num_parts) returns, got "
                                   f"{type(noise).__name__}; StepLogits.sample takes uniform noise as it is")
        (ids_noise, locs_noise, threshold), (ids_out, locs_out, present_out) = noise, out or (None, None, None)
        drawn = torch.lt(threshold, torch.sigmoid(present), out=present_out)
        return (torch.argmax(ids + ids_noise, -1, out=ids_out), torch.argmax(locs + locs_noise, -1, out=locs_out),
                drawn if out else drawn.to(self.present.dtype))

    def mode(self) -> tuple[torch.Tensor, ...]:
        """The most likely (ids, locs, present) of every step: argmax for z_id and z_loc, logit > 0 for z_is."""
        return self.ids.argmax(-1), self.locs.argmax(-1), (self.present > 0).to(self.present.dtype)

    def log_prob(self, latents: Latents) -> torch.Tensor:
        """log p(z) summed over steps: z_id and z_loc count only where z_is = 1. Returns (N,) float32, computed in
        float32 whatever the logits' dtype (in bfloat16 a sum of hundreds of nats moves in steps of 1 or 2).
        ``latents``' shapes and dtypes are checked; their values are trusted (see :meth:`Latents.check`)."""
        shapes = [tuple(getattr(latents, field).shape) for field in ("ids", "locs", "present")]
        if shapes != [tuple(self.present.shape)] * 3 or not (_indices(latents.ids) and _indices(latents.locs)):
            raise InvalidInputError(f"latents ids, locs and present must each have the logits' shape (N, T) = "
                                    f"{tuple(self.present.shape)} and ids and locs be integer tensors, got shapes "
                                    f"{shapes} and dtypes {latents.ids.dtype} and {latents.locs.dtype}")
        log_id = -F.cross_entropy(self.ids.float().transpose(1, 2), latents.ids.long(), reduction="none")
        log_loc = -F.cross_entropy(self.locs.float().transpose(1, 2), latents.locs.long(), reduction="none")
        present = latents.present.float()
        log_is = -F.binary_cross_entropy_with_logits(self.present.float(), present, reduction="none")
        return ((log_id + log_loc) * present + log_is).sum(1)


def _indices(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` holds indices: an integer dtype, not bool (a bool or uint8 tensor indexes as a mask, so
    every user converts them to int64 first)."""
    return not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)


@dataclass(eq=False)  # _Batch's comparison
class Latents(_Batch):
    """A batch of latent sequences over T steps.

    ids: (N, T) int64 part index. locs: (N, T) int64 location (grid cell). present: (N, T) float z_is in {0, 1};
    ids and locs of steps with present = 0 are not drawn and carry no meaning.
    canvas: (N, C, S, S) in [0, 1], the composed canvas, when known.
    logits: the distributions the latents came from (the posterior for ``NPDraw.encode``), when known.
    """

    ids: torch.Tensor
    locs: torch.Tensor
    present: torch.Tensor
    canvas: torch.Tensor | None = None
    logits: StepLogits | None = None

    def __getitem__(self, index) -> Latents:
        """The drawings ``index`` picks along the batch axis (an int, a slice, indices or a boolean mask over N), every
        field indexed alike. Only the batch axis: ``latents[:, :k]`` indexed each field's second axis, the canvas's
        channels (N, k, S, S) beside k steps, so a tuple, None, Ellipsis or an index of more than one axis is an
        InvalidInputError."""
        if isinstance(index, tuple) or index is None or index is Ellipsis or getattr(index, "ndim", 0) > 1:
            raise InvalidInputError(f"Latents index the batch axis only (an int, a slice, indices or a boolean mask "
                                    f"over N), got {index!r}; to keep k steps, slice the tensors: "
                                    "Latents(x.ids[:, :k], x.locs[:, :k], x.present[:, :k])")
        if isinstance(index, (str, bytes, float, complex)):  # torch's TypeError or IndexError from inside _map
            raise InvalidTypeError(f"Latents index the batch axis with an int, a slice, indices or a boolean mask, "
                                   f"got {type(index).__name__} {index!r}")
        return super().__getitem__(index)

    def check(self, *, num_parts: int, num_steps: int, count: int | None = None, name: str = "latents") -> int:
        """The number of steps k of hard latents after checking them: ids, locs and present each (N, k) with
        k <= ``num_steps`` (and N = ``count`` when given), integer ids in [0, ``num_parts``) and locs in
        [0, ``num_steps``), present of 0s and 1s; else an InvalidInputError (InvalidTypeError for what is not a
        tensor) naming ``name``."""
        tensors = {field: getattr(self, field) for field in ("ids", "locs", "present")}
        if not all(isinstance(tensor, torch.Tensor) for tensor in tensors.values()):
            raise InvalidTypeError(f"{name} ids, locs and present must be torch tensors, got "
                                   f"{ {field: type(value).__name__ for field, value in tensors.items()} }")
        if any(tensor.device.type == "meta" for tensor in tensors.values()):
            raise InvalidInputError(f"{name} are on the 'meta' device, which holds shapes without data; move them to "
                                    "a device that computes, such as 'cpu' or 'cuda'")
        shapes = {field: tuple(tensor.shape) for field, tensor in tensors.items()}
        k, n = (shapes["ids"][1], shapes["ids"][0]) if len(shapes["ids"]) == 2 else (-1, None)
        n = n if count is None else count
        if any(shape != (n, k) for shape in shapes.values()) or not 0 <= k <= num_steps:
            batch = "N" if n is None else f"N={n}"
            raise InvalidInputError(f"{name} ids, locs and present must each have shape ({batch}, k) with k <= "
                                    f"T={num_steps}, got {shapes}")
        if not (_indices(self.ids) and _indices(self.locs)):
            raise InvalidInputError(f"{name} ids and locs must be integer tensors, got {self.ids.dtype} and "
                                    f"{self.locs.dtype}")
        if k and n:
            ids, locs = (tuple(map(int, torch.aminmax(x))) for x in (self.ids, self.locs))  # one pass each
            if not (0 <= ids[0] and ids[1] < num_parts and 0 <= locs[0] and locs[1] < num_steps):
                raise InvalidInputError(f"{name} ids must lie in [0, {num_parts}) and locs in [0, {num_steps}), got "
                                        f"ids in [{ids[0]}, {ids[1]}] and locs in [{locs[0]}, {locs[1]}]")
        other = (self.present != 0) & (self.present != 1) if k else None
        if k and other.any():
            raise InvalidInputError(f"{name} present must hold only 0 and 1, got {int(other.sum())} other values "
                                    f"such as {self.present[other][0].item():g}")
        return k
