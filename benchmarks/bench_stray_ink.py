"""Stray ink: how much faint background a grey model's samples carry, against the real images.

    python benchmarks/bench_stray_ink.py --data ../shared/data [--samples 10000]
    python benchmarks/bench_stray_ink.py --data ../shared/data --models runs/omniglot-128  # a training run's folder

A bundled grey model's sample is a map of Bernoulli probabilities p; binarised, every pixel is ink with
probability p. Stray ink is the expected number of ink pixels that come from faint pixels, the sum of p over the
pixels with p < 0.3: the salt noise of binarised samples, and the grey boxes that undrawn part backgrounds leave. The
same sum over the real test images (their grey levels as probabilities) is the data's own figure; the target is
within 1.5x of it. The reconstructions of the test images (the decoder's mean given the encoder's canvas) show
whether the faint pixels come from the prior's drawings or from the decoder, and their calibration (mean probability
against the mean grey level of the same pixels, by band) whether the decoder's faint pixels are doubt or haze.
Prints markdown tables and writes a JSON file.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch
from common import table, write_json

from np_draw import NPDraw
from np_draw.data import load_dataset
from np_draw.errors import run_main

GREY = ("mnist", "omniglot")


def stray_ink(probabilities: torch.Tensor, below: float = 0.3) -> torch.Tensor:
    """Per image: the sum of the probabilities under ``below`` (N,), for (N, 1, H, W) in [0, 1]."""
    return (probabilities * (probabilities < below)).flatten(1).sum(1)


def calibration(probabilities: torch.Tensor, images: torch.Tensor,
                edges: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0)) -> list[dict]:
    """Per band of probability: how many pixels per image fall in it, their mean probability and the mean grey
    level of the same pixels of ``images`` (both (N, 1, H, W) in [0, 1]). A calibrated decoder has the two means
    equal: its faint pixels are then ink as often as it says, doubt the canvas leaves it, not haze."""
    bands = []
    for low, high in itertools.pairwise(edges):
        inside = (probabilities >= low) & ((probabilities < high) if high < 1 else (probabilities <= high))
        bands.append({"from": low, "to": high, "pixels_per_image": inside.sum().item() / len(images),
                      "mean_probability": probabilities[inside].mean().item(),
                      "mean_grey_level": images[inside].mean().item()})
    return bands


def test_images_of(model: str) -> str | None:
    """The grey data set a bundled name or a train_pretrained.py run folder was trained on, None if neither."""
    if model in GREY:
        return model
    record = Path(model) / "training.json"
    name = json.loads(record.read_text()).get("name") if record.is_file() else None
    return name if name in GREY else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--models", nargs="+", default=["mnist", "omniglot"],
                        help="bundled names, or folders of train_pretrained.py runs (their training.json names the data)")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--out", default="bench_stray_ink.json")
    args = parser.parse_args()
    datasets = {name: test_images_of(name) for name in args.models}
    if None in datasets.values():
        parser.error(f"--models: {[name for name, found in datasets.items() if found is None]} are neither mnist, "
                     "omniglot nor the folder of a train_pretrained.py run of one of them")
    results, rows, calibration_rows = {"samples": args.samples}, [], []
    for name in args.models:
        model = NPDraw.from_pretrained(name)
        samples = model.sample(args.samples, generator=torch.Generator().manual_seed(0), progress=False).images
        data = load_dataset(datasets[name], args.data, "test").float() / 255
        reconstructions = model.reconstruct(data)
        figures = {"samples": stray_ink(samples).mean().item(), "data": stray_ink(data).mean().item(),
                   "reconstructions": stray_ink(reconstructions).mean().item(),
                   "calibration": calibration(reconstructions, data)}
        figures["ratio"] = figures["samples"] / figures["data"]
        results[name] = figures
        calibration_rows += [(name, f"[{band['from']}, {band['to']})", f"{band['pixels_per_image']:.1f}",
                              f"{band['mean_probability']:.3f}", f"{band['mean_grey_level']:.3f}")
                             for band in figures["calibration"]]
        rows.append((name, f"{figures['samples']:.1f}", f"{figures['data']:.1f}", f"{figures['ratio']:.2f}",
                     "yes" if figures["ratio"] <= 1.5 else "no", f"{figures['reconstructions']:.1f}"))
        print(rows[-1], flush=True)
    table(f"Stray ink per image: sum of the pixel probabilities below 0.3 ({args.samples:,} samples; test images)",
          rows, ("model", "samples", "data", "ratio", "within 1.5x", "reconstructions of the test images"))
    table("Calibration of the reconstructions of the test images: the pixels whose probability lies in each band, "
          "their mean probability and the mean grey level of the same pixels of the test images",
          calibration_rows, ("model", "probability band", "pixels per image", "mean probability", "mean grey level"))
    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
