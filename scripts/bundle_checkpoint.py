"""Measure a trained model folder on the test split and bundle it as a pretrained checkpoint in the package.

    python scripts/bundle_checkpoint.py --name mnist --model runs/mnist --data ../shared/data --note "..."

Measures (np_draw.metrics, seed 0): the importance-sampled NLL bound with 50 samples (on --nll-images N test images,
every (len // N)-th from the first, so that the subset covers the split: CIFAR-10's files are sorted by class,
Omniglot's by alphabet; the manifest's metric names say which, e.g. ``_every8th``), the FID in the shipped
feature network's space between as many samples as test images and the test images, and parse and reconstruction PSNR
on the whole test split. Writes np_draw/weights/<name>/ (config, weights, model card with the training record of
scripts/train_pretrained.py), records the files' sha256 and size and the metrics in np_draw/weights/manifest.json,
copies the manifest to weights_manifest.json, and draws docs/pictures/<name>_samples.png (8x8) and
docs/pictures/<name>_reconstructions.png (16 test images, taken the same way, over their reconstructions).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import time
from pathlib import Path

import torch
from cifar10_jpeg_effect import jpeg_effect

from np_draw import NPDraw, NPDrawConfig
from np_draw.data import load_dataset
from np_draw.errors import run_main
from np_draw.hub import model_card
from np_draw.images import save_grid
from np_draw.manifest import describe_files, manifest_path
from np_draw.metrics import default_features, fid, nll, parse_psnr, reconstruction_psnr
from np_draw.model_files import CARD_NAME, CONFIG_NAME

ROOT = Path(__file__).resolve().parent.parent
DATASET_NOTES = {
    "omniglot": "Omniglot here is the paper's split (the IWAE paper's protocol) at 28x28: drawers 1-15 of all 1,623 "
                "characters to train (24,345 images), drawers 16-20 to test (8,115; the IWAE paper's file has "
                "8,070).",
    "celeba": "CelebA here is a 6,000-image subset (200 identities x 30 images; 4,800 train / 600 validation / 600 "
              "test, every identity in every split, so the test faces are of people seen in training), not the full "
              "202,599 images of the paper.",
    "cifar10": "CIFAR-10 here is decoded from JPEG files (quality 75, about 30 dB from the lossless originals).",
}


def card_facts(entry: dict, metrics: dict, notes: str, training: dict | None) -> dict:
    """The model card's facts for a manifest entry."""
    card = {"dataset": entry["dataset"], "metrics": metrics, "notes": notes, "repo_id": entry["repo_id"],
            **{key: entry[key] for key in ("license", "license_name", "license_link", "data_license") if key in entry}}
    if training is not None:
        card["training"] = training
    return card


def record_metrics(name: str, metrics: dict[str, float], drop: tuple[str, ...] = ()) -> None:
    """Add ``metrics`` to (and remove ``drop`` from) the bundled model ``name``'s manifest entry and model card,
    keeping the card's notes and training record, and update the files' sha256 in both manifests."""
    manifest_file = manifest_path()
    manifest = json.loads(manifest_file.read_text())
    entry = manifest["models"][name]
    entry["metrics"] = {**{k: v for k, v in entry["metrics"].items() if k not in drop}, **metrics}
    folder = manifest_file.parent / name
    text = (folder / CARD_NAME).read_text()
    notes = re.search(r"## Notes\n\n(.*?)\n\n## ", text, re.DOTALL)
    training = re.search(r"```json\n(.*?)\n```", text, re.DOTALL)
    model_card(NPDrawConfig.from_json(folder / CONFIG_NAME),
               card_facts(entry, entry["metrics"], notes.group(1) if notes else "",
                          json.loads(training.group(1)) if training else None)).save(folder / CARD_NAME)
    entry["files"] = describe_files(folder)
    text = json.dumps(manifest, indent=2) + "\n"
    manifest_file.write_text(text)
    (ROOT / "weights_manifest.json").write_text(text)


def every_kth(images: torch.Tensor, count: int | None) -> tuple[torch.Tensor, int]:
    """``count`` of ``images``, every k-th from the first with k = len // count (all for None), and k: the subsets
    the manifest's metrics and the pictures were measured on (np_draw.images.spread, which np-draw eval --limit
    uses, differs where count does not divide the split)."""
    every = 1 if count is None else max(1, len(images) // count)
    return images[::every][:count], every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, choices=["mnist", "omniglot", "cifar10", "celeba"])
    parser.add_argument("--model", required=True, help="the trained model folder")
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--note", default="", help="what the model card should say about this checkpoint")
    parser.add_argument("--nll-images", type=int, default=None,
                        help="score the NLL on N test images, every (len // N)-th from the first (default: all)")
    parser.add_argument("--num-samples", type=int, default=50, help="importance samples per image")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    start = time.time()
    model = NPDraw.from_pretrained(args.model)
    test = load_dataset(args.name, args.data, "test").float() / 255
    scored, every = every_kth(test, args.nll_images)
    bound = nll(model, scored, args.num_samples, seed=0, progress=False)
    generated = model.sample(len(test), generator=torch.Generator().manual_seed(0), progress=False).images
    distance = fid(generated, test, default_features(model), progress=False)
    subset = "" if len(scored) == len(test) else f"_every{every}th"
    unit, value = (("nats", bound.mean_nats) if model.config.channels == 1 else
                   ("bits_per_dim", bound.mean_bits_per_dim))
    # CIFAR-10's test split here is JPEG: the name says so, and the lossless images available score beside it.
    kind = "jpeg_" if args.name == "cifar10" else ""
    metrics = {
        f"test_{kind}nll_{unit}_{args.num_samples}is{subset}": round(value, 3),
        f"test_{distance.label}": round(distance.value, 3),
        "test_parse_psnr_db": round(parse_psnr(model, test).mean().item(), 2),
        "test_reconstruction_psnr_db": round(reconstruction_psnr(model, test).mean().item(), 2),
    }
    if args.name == "cifar10":
        metrics.update(jpeg_effect(model, args.data, args.num_samples))
    record_file = Path(args.model) / "training.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else None
    manifest_file = manifest_path()
    manifest = json.loads(manifest_file.read_text())
    entry = manifest["models"][args.name]
    dataset_note = DATASET_NOTES.get(args.name, "")
    notes = " ".join(filter(None, [args.note, "" if dataset_note in args.note else dataset_note]))
    training = None if record is None else {
        key: record[key] for key in ("git_commit", "config", "fit_config", "seed", "limit", "wall_time_s", "machine",
                                     "data_sha256", "new_encoder_decoder", "mixture_head", "continued_from")
        if key in record}
    card = card_facts(entry, metrics, notes, training)
    folder = manifest_file.parent / args.name
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, card=card)
    entry.update(bundled=True, files=describe_files(folder), metrics=metrics)
    text = json.dumps(manifest, indent=2) + "\n"
    manifest_file.write_text(text)
    (ROOT / "weights_manifest.json").write_text(text)
    pictures = ROOT / "docs" / "pictures"
    pictures.mkdir(parents=True, exist_ok=True)
    save_grid(generated[:64], pictures / f"{args.name}_samples.png", nrow=8)
    originals = every_kth(test, 16)[0]
    save_grid(torch.cat([originals, model.reconstruct(originals)]), pictures / f"{args.name}_reconstructions.png",
              nrow=16)
    print(json.dumps({"name": args.name, "metrics": metrics, "files": entry["files"],
                      "bundle_seconds": round(time.time() - start)}, indent=2))


if __name__ == "__main__":
    run_main(main, __file__)
