"""Watch the bundled MNIST model draw: animated GIFs of sampled digits, part by part, and one strip per digit.

    python examples/drawing_animation.py          # writes example_outputs/drawing_*.gif, drawing_*.png, part_bank.png
    python examples/drawing_animation.py --out my_folder --num 2 --seed 3

Each frame is the canvas after one drawn step, with the box of the part just pasted outlined in red; the last
frame is the decoded digit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from np_draw import NPDraw
from np_draw.pictures import drawing_strip, part_bank_image, save_drawing_gif


def positive(text: str) -> int:
    """An argparse type: a positive int, else argparse's own one-line error."""
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_outputs"), help="output folder (created)")
    parser.add_argument("--num", type=positive, default=4, help="how many digits to draw")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    model = NPDraw.from_pretrained("mnist")  # bundled with the package: no network needed
    out = model.sample(args.num, generator=torch.Generator().manual_seed(args.seed), progress=False)
    written = [args.out / "part_bank.png"]
    part_bank_image(model.bank, scale=6).save(written[0])
    for i in range(args.num):
        written.append(save_drawing_gif(model, out.latents, args.out / f"drawing_{i}.gif", index=i, scale=8))
        strip = args.out / f"drawing_{i}.png"
        drawing_strip(model, out.latents, index=i, scale=2).save(strip)
        written.append(strip)
    steps = out.latents.present.sum(1).int().tolist()
    print(f"wrote {len(written)} files to {args.out}; the digits took {steps} drawn steps")


if __name__ == "__main__":
    main()
