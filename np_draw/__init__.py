"""np-draw: NP-DRAW (Zeng et al., UAI 2021), a non-parametric structured latent variable model for images."""

from .bank import PartBank
from .canvas import Grid
from .config import PRESETS, NPDrawConfig, PriorConfig
from .latents import Latents, StepLogits
from .model import NPDraw, SampleOutput
from .parsing import parse, psnr, render
from .prior import Prior

__all__ = [
    "PRESETS", "Grid", "Latents", "NPDraw", "NPDrawConfig", "PartBank", "Prior", "PriorConfig", "SampleOutput",
    "StepLogits", "parse", "psnr", "render",
]
__version__ = "0.1.0"
