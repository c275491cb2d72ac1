"""Configuration dataclasses for NP-DRAW, serialised to JSON.

The presets carry the paper's numbers (supplement §1 and the project spec §2): part size K, bank size B,
grid of T = L cells, likelihood and network widths for each data family.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import InvalidInputError, InvalidTypeError, UnknownModelError, check_channels, check_count, check_flags

Likelihood = Literal["bernoulli", "logistic_mixture", "logistic"]
LIKELIHOODS = ("bernoulli", "logistic_mixture", "logistic")


def python_values(config: Any, flags: tuple[str, ...] = ()) -> None:
    """Make a config dataclass's NumPy numbers Python's, for its checks and for JSON, and check its ``flags``
    (:func:`np_draw.errors.check_flags`: Python's or NumPy's bools), then make them Python's."""
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
            setattr(config, spec.name, int(value) if isinstance(value, numbers.Integral) else float(value))
    check_flags(**{name: getattr(config, name) for name in flags})
    for name in flags:
        setattr(config, name, bool(getattr(config, name)))


@dataclass
class PriorConfig:
    """The autoregressive Transformer prior p(z) (spec §5)."""

    num_layers: int = 8  # paper
    hidden_size: int = 64  # paper
    num_heads: int = 4  # not in the paper; 4 heads of 16 dims
    ff_size: int = 128  # not in the paper; chosen for speed (benchmarks/bench_core.py compares widths)
    dropout: float = 0.1  # paper
    cnn_channels: int = 16  # paper: shallow CNN, 2 layers, hidden 16

    def __post_init__(self) -> None:
        python_values(self)
        for name in ("num_layers", "hidden_size", "num_heads", "ff_size", "cnn_channels"):
            check_count(getattr(self, name), name)
        if self.hidden_size % self.num_heads:
            raise InvalidInputError(
                f"hidden_size must be divisible by num_heads, got hidden_size={self.hidden_size}, "
                f"num_heads={self.num_heads}"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real) or not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError(f"dropout must be a number in [0, 1), got {self.dropout!r}")


@dataclass
class NPDrawConfig:
    """Everything that fixes the shapes of an NP-DRAW model.

    The canvas grid has ``grid_size x grid_size`` cells of ``part_size`` pixels placed every ``stride`` pixels,
    starting ``padding`` pixels before the canvas edge; its cells are both the T steps and the L locations.
    """

    image_size: int = 28
    channels: int = 1
    canvas_size: int = 28
    part_size: int = 5
    num_parts: int = 50
    grid_size: int = 6
    stride: int = 5
    padding: int = 1
    likelihood: Likelihood = "bernoulli"
    num_mixtures: int = 10  # only for "logistic_mixture"
    empty_threshold: float = 0.01  # parse: a patch whose mean is below this is empty (paper: 0.01)
    # The reference code's width (the paper gives none); the bundled models are 64 wide
    encoder_channels: int = 128
    decoder_channels: int = 128
    binarize: bool = False  # dynamically binarised data (MNIST, Omniglot)
    prior: PriorConfig = field(default_factory=PriorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.prior, Mapping):
            known = {f.name for f in dataclasses.fields(PriorConfig)}
            unknown = sorted(set(self.prior) - known, key=str)
            if unknown:  # PriorConfig(**prior)'s TypeError named one, and not the known ones
                raise InvalidInputError(f"unknown prior config keys {unknown}; known keys are {sorted(known)}")
            try:
                self.prior = PriorConfig(**self.prior)
            except InvalidInputError as error:  # a config.json's prior: name the field as it is nested there
                raise InvalidInputError(f"prior.{error}") from error
        if not isinstance(self.prior, PriorConfig):
            raise InvalidTypeError(f"prior must be a PriorConfig or a dict of its fields, got "
                                   f"{type(self.prior).__name__}")
        python_values(self, flags=("binarize",))
        for name in ("image_size", "canvas_size", "part_size", "num_parts", "grid_size", "stride", "num_mixtures",
                     "encoder_channels", "decoder_channels"):
            check_count(getattr(self, name), name)
        check_count(self.padding, "padding", least=0)
        if self.likelihood not in LIKELIHOODS:
            raise InvalidInputError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        check_channels(self.channels)
        if self.likelihood == "bernoulli" and self.channels != 1:
            raise InvalidInputError("likelihood 'bernoulli' needs channels=1")
        if self.image_size % self.canvas_size or self.image_size // self.canvas_size not in (1, 2):
            raise InvalidInputError(
                f"image_size must be canvas_size or 2*canvas_size, got image_size={self.image_size}, "
                f"canvas_size={self.canvas_size}"
            )
        covered = (self.grid_size - 1) * self.stride + self.part_size
        if (self.canvas_size + 2 * self.padding - self.part_size) // self.stride + 1 != self.grid_size:
            raise InvalidInputError(
                f"the grid does not fit the canvas: {self.grid_size} cells of {self.part_size} px every "
                f"{self.stride} px cover {covered} px, but the padded canvas is "
                f"{self.canvas_size + 2 * self.padding} px"
            )
        if isinstance(self.empty_threshold, bool) or not isinstance(self.empty_threshold, numbers.Real) \
                or not 0.0 <= self.empty_threshold < 1.0:
            raise InvalidInputError(f"empty_threshold must be a number in [0, 1), got {self.empty_threshold!r}")

    @property
    def num_steps(self) -> int:
        """T, the number of drawing steps (= grid cells = locations L)."""
        return self.grid_size**2

    @property
    def upscale(self) -> int:
        """Image size over canvas size (2 for CelebA, else 1)."""
        return self.image_size // self.canvas_size

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (nested for the prior), as written to JSON."""
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to a JSON string, and write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NPDrawConfig:
        """Build a config from a dict; unknown keys are an error (no silently ignored fields), and a field left out
        takes its default."""
        if not isinstance(data, Mapping):
            raise InvalidTypeError(f"a config must be a dict of NPDrawConfig's fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        prior = data.get("prior")
        known_prior = {f.name for f in dataclasses.fields(PriorConfig)}
        if isinstance(prior, dict) and set(prior) - known_prior:  # __post_init__ makes the dict a PriorConfig
            raise InvalidInputError(f"unknown prior config keys {sorted(set(prior) - known_prior)}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> NPDrawConfig:
        """Read a config written by :meth:`to_json`.

        Raises:
            InvalidInputError: the file is not a valid config (not JSON, not a JSON object, unknown keys, bad
            values); the message names it. FileNotFoundError: there is no file at ``path``.
        """
        path = Path(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(document, dict):
                raise TypeError(f"a JSON object is expected, got a JSON {type(document).__name__}")
            return cls.from_dict(document)
        # ValueError: bad JSON or UTF-8, unknown keys, bad values; RecursionError: arrays nested thousands deep
        except (TypeError, ValueError, RecursionError) as error:
            raise InvalidInputError(f"{path} is not a valid NP-DRAW config: {error}") from error

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> NPDrawConfig:
        """The paper's configuration for ``name`` in ("mnist", "omniglot", "cifar10", "celeba")."""
        if name not in PRESETS:
            raise UnknownModelError(f"unknown preset {name!r}; known presets are {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name].to_dict(), **overrides})


_GREY = {"image_size": 28, "channels": 1, "canvas_size": 28, "part_size": 5, "num_parts": 50, "grid_size": 6,
         "stride": 5, "padding": 1, "likelihood": "bernoulli", "binarize": True}
_RGB = {"channels": 3, "canvas_size": 32, "part_size": 4, "num_parts": 200, "grid_size": 8, "stride": 4, "padding": 0}

PRESETS: dict[str, NPDrawConfig] = {
    "mnist": NPDrawConfig(**_GREY),
    "omniglot": NPDrawConfig(**_GREY),
    "cifar10": NPDrawConfig(image_size=32, likelihood="logistic_mixture", **_RGB),
    "celeba": NPDrawConfig(image_size=64, likelihood="logistic", **_RGB),
}
