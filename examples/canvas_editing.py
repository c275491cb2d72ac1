"""Edit digits on their canvases: paste the top half of one digit's parse onto another, then decode.

    python examples/canvas_editing.py            # writes example_outputs/canvas_editing.png
    python examples/canvas_editing.py --out my_folder --seed 3

The decoder sees only the canvas of pasted parts, so an edit of the parts is an edit of the image: the paper's
face-editing figure (hair or glasses of one face on another), here on MNIST digits drawn by the bundled model.
Each row of the picture: target | source | the target's parse with the source's top cells | that canvas decoded |
the same edit made on the canvas pixels and decoded | the prior finishing the edited top half its own way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from np_draw import NPDraw
from np_draw.editing import paste_canvas, paste_latents
from np_draw.pictures import comparison_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_outputs"), help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    model = NPDraw.from_pretrained("mnist")  # bundled with the package: no network needed
    # The decoder gives each pixel's probability of ink; rounding keeps the likely ink and a black background.
    digits = model.sample(12, generator=torch.Generator().manual_seed(args.seed), progress=False).images.round()
    parses = model.parse(digits)  # step t draws grid cell t (6 x 6 cells, row-major)
    target, source = parses[:6], parses[6:]
    top_half = (0, 0, 28, 14)  # (left, top, right, bottom) in canvas pixels: the top 3 rows of cells

    edited = paste_latents(model, target, source, box=top_half)
    pixels = paste_canvas(model.grid, target.canvas, source.canvas, box=top_half)
    # The edited drawing's first 18 steps are the source's top half; the prior draws the rest.
    finished = model.complete(edited, 18, generator=torch.Generator().manual_seed(args.seed)).images

    picture = comparison_image([digits[:6], digits[6:], edited.canvas, model.decode(edited), model.decode(pixels),
                                finished], scale=3)
    path = args.out / "canvas_editing.png"
    picture.save(path)
    changed = edited.canvas != target.canvas
    top, bottom = (changed[..., rows, :].sum().item() for rows in (slice(0, 14), slice(14, None)))
    print(f"wrote {path}; the paste changed {top} canvas pixels in the top 14 rows and {bottom} below them")


if __name__ == "__main__":
    main()
