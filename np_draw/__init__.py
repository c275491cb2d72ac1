"""np-draw: NP-DRAW (Zeng et al., UAI 2021), a non-parametric structured latent variable model for images."""

from .bank import PartBank
from .canvas import Grid
from .config import PRESETS, NPDrawConfig, PriorConfig
from .errors import (
    ConfigMismatchError,
    CorruptWeightsError,
    InvalidInputError,
    InvalidTypeError,
    MissingFileError,
    NPDrawError,
    TrainingDivergedError,
    UnknownModelError,
    UnwritablePathError,
    WeightsUnavailableError,
)
from .latents import Latents, StepLogits
from .metrics import psnr
from .model import NPDraw, SampleOutput, render
from .parsing import parse
from .prior import Prior

__all__ = [
    "PRESETS", "ConfigMismatchError", "CorruptWeightsError", "Grid", "InvalidInputError", "InvalidTypeError",
    "Latents", "MissingFileError", "NPDraw", "NPDrawConfig", "NPDrawError", "PartBank", "Prior", "PriorConfig", "SampleOutput",
    "StepLogits", "TrainingDivergedError", "UnknownModelError", "UnwritablePathError", "WeightsUnavailableError",
    "parse", "psnr", "render",
]
__version__ = "0.1.0"
