"""Make the pictures of docs/model.md from a pretrained model.

    python scripts/make_pictures.py --name mnist --data ../shared/data --out docs/pictures

Writes, each prefixed with the model's name: the part bank, a parse drawn step by step, a prior sample drawn step
by step (strip and GIF), reconstructions, an edit (the top of one drawing pasted onto another), completions of the
top of drawings, and interpolations. The images come from the data set's test split when ``--data`` is given, else
from the model's own samples. Everything is seeded: the same model and arguments give the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from np_draw import NPDraw
from np_draw.data import DATASETS, load_dataset
from np_draw.editing import interpolate, paste_latents
from np_draw.errors import run_main
from np_draw.pictures import (
    comparison_image,
    drawing_strip,
    part_bank_image,
    reconstruction_image,
    save_drawing_gif,
)

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="mnist", help="a pretrained model's name or folder (default: mnist)")
    parser.add_argument("--data", default=None,
                        help="the shared data folder; its test images are shown (default: the model's samples)")
    parser.add_argument("--dataset", default=None, help=f"the data set in --data (default: --name); one of {DATASETS}")
    parser.add_argument("--out", default=str(ROOT / "docs" / "pictures"),
                        help="output folder (default: the repository's docs/pictures)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--box", type=int, nargs=4, default=None, metavar=("LEFT", "TOP", "RIGHT", "BOTTOM"),
                        help="the edited region in canvas pixels (default: the top half)")
    args = parser.parse_args()

    model = NPDraw.from_pretrained(args.name)
    cfg = model.config
    name = Path(args.name).name
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.data is not None:
        images = load_dataset(args.dataset or name, args.data, "test", limit=8).float() / 255
    else:
        images = model.sample(8, torch.Generator().manual_seed(args.seed + 1), progress=False).images
        if cfg.likelihood == "bernoulli":  # ink probabilities: keep the likely ink, so that empty cells parse empty
            images = images.round()
    box = tuple(args.box) if args.box else (0, 0, cfg.canvas_size, cfg.canvas_size // 2)
    written = []

    def save(picture, suffix: str) -> None:
        path = out / f"{name}_{suffix}"
        picture.save(path)
        written.append(path)

    save(part_bank_image(model.bank, scale=4), "part_bank.png")
    parses = model.parse(images)
    save(drawing_strip(model, parses, index=0, scale=2), "parse_strip.png")
    sample = model.sample(1, torch.Generator().manual_seed(args.seed), progress=False)
    save(drawing_strip(model, sample.latents, scale=2), "sample_strip.png")
    written.append(save_drawing_gif(model, sample.latents, out / f"{name}_drawing.gif", scale=5))
    save(reconstruction_image(model, images[:4], scale=2), "reconstruction.png")

    # Edit: the region of drawing 4+i pasted onto drawing i.
    target, source = parses[:4], parses[4:8]
    edited = paste_latents(model, target, source, box=box)
    save(comparison_image([target.canvas, source.canvas, edited.canvas, model.decode(edited)], scale=2), "edit.png")

    # Completion: the prior finishes the first half of the steps (the top rows of cells) of four parses, 3 ways.
    half = cfg.num_steps // 2
    top = model.render(parses.ids[:4], parses.locs[:4], parses.present[:4] * (torch.arange(cfg.num_steps) < half))
    completions = [model.complete(parses[:4], half, torch.Generator().manual_seed(args.seed + i)).images
                   for i in range(3)]
    save(comparison_image([images[:4], top, *completions], scale=2), "completion.png")

    # Interpolation from image 0 to image 1: one row per method.
    paths = [interpolate(model, images[0], images[1], 8, method=method) for method in ("logits", "swap")]
    save(comparison_image(list(torch.stack(paths, dim=1)), scale=2), "interpolation.png")

    for path in written:
        print(f"{path}  {path.stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    run_main(main, __file__)
