"""Measure a trained model folder on the test split and bundle it as a pretrained checkpoint in the package.

    python scripts/bundle_checkpoint.py --name mnist --model runs/mnist --data ../shared/data --note "..."

Writes np_draw/weights/<name>/ (config, weights, model card), records the files' sha256 and size and the measured
metrics in np_draw/weights/manifest.json, and copies the manifest to weights_manifest.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from np_draw import NPDraw, hub, psnr
from np_draw.data import load_dataset, to_canvas
from np_draw.training import validation_bound

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, choices=["mnist", "omniglot", "cifar10", "celeba"])
    parser.add_argument("--model", required=True, help="the trained model folder")
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--note", default="", help="what the model card should say about this checkpoint")
    args = parser.parse_args()
    model = NPDraw.from_pretrained(args.model)
    test = load_dataset(args.name, args.data, "test").float() / 255
    torch.manual_seed(0)
    parsed = model.parse(test)
    metrics = {
        "test_neg_elbo_1sample_nats": round(validation_bound(model, test, parsed), 2),
        "parse_psnr_db": round(psnr(parsed.canvas, to_canvas(test, model.config.canvas_size)).mean().item(), 2),
    }
    training = Path(args.model) / "training.json"
    notes = args.note
    if training.is_file():
        record = json.loads(training.read_text())
        notes += f" Training wall time {record['wall_time_s'] / 60:.0f} min on {record['machine']}."
    manifest_file = hub.manifest_path()
    manifest = json.loads(manifest_file.read_text())
    entry = manifest["models"][args.name]
    card = {"dataset": entry["dataset"], "metrics": metrics, "notes": notes.strip(), "license": entry["license"],
            "repo_id": entry["repo_id"]}
    folder = manifest_file.parent / args.name
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, card=card)
    entry.update(bundled=True, files=hub.describe_files(folder), metrics=metrics)
    text = json.dumps(manifest, indent=2) + "\n"
    manifest_file.write_text(text)
    (ROOT / "weights_manifest.json").write_text(text)
    print(json.dumps({"name": args.name, "metrics": metrics, "files": entry["files"]}, indent=2))


if __name__ == "__main__":
    main()
