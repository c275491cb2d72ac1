"""Fine-tune the bundled MNIST model on Omniglot characters and score it on characters it was not trained on.

    python examples/fine_tune_omniglot.py                      # the 100 characters shipped in tests/fixtures
    python examples/fine_tune_omniglot.py --data ../shared/data  # 1,000 drawings of 67 characters, the issue's setup

``model.fit(images)`` on a trained model fine-tunes it (FitConfig.finetune): the MNIST part bank is kept (its 5x5
stroke pieces draw Omniglot characters too), the prior learns where and which parts the new characters use, then
the encoder and decoder adapt, and the best validation round is kept. The figures printed are on held-out images:
with --data, drawings of the same characters by the other five drawers; with the fixture, 20 characters that are
not trained on. Writes, under --out: the fine-tuned model folder, held-out reconstructions before and after (each
character beside its reconstruction) and samples of the fine-tuned model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from np_draw import NPDraw
from np_draw.data import omniglot_by_drawer
from np_draw.images import save_pairs
from np_draw.metrics import nll, reconstruction_psnr

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "omniglot_100.npz"


def load_characters(data: Path | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and held-out Omniglot images, uint8 (N, 1, 28, 28): drawers 1-15 and 16-20 of 67 characters of
    the evaluation alphabets chosen with ``seed`` (--data), or 80 and 20 of the fixture's 100 characters."""
    if data is None:
        images = torch.from_numpy(np.load(FIXTURE, allow_pickle=False)["images"])[:, None]
        return images[:80], images[80:]
    train, held_out, _ = omniglot_by_drawer(data, seed=seed)
    return train[:1000], held_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_outputs"), help="output folder (created)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the data folder holding omniglot/evaluation_28x28.npz (default: the 100-image fixture)")
    parser.add_argument("--steps", type=int, default=None,
                        help="encoder/decoder steps (default: FitConfig.finetune's, 60 with the fixture)")
    parser.add_argument("--samples", type=int, default=None,
                        help="importance samples of the held-out bound (default 50, 10 with the fixture)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    quick = args.data is None  # the fixture run is a smoke test: a short budget
    steps = args.steps or (60 if quick else None)
    samples = args.samples or (10 if quick else 50)

    train, held_out = load_characters(args.data, args.seed)
    held_out = held_out.float() / 255
    model = NPDraw.from_pretrained("mnist")
    before = {"nll": nll(model, held_out, samples, progress=False).mean_nats,
              "psnr": reconstruction_psnr(model, held_out).mean().item()}
    save_pairs(held_out[:16], model.reconstruct(held_out[:16]), args.out / "held_out_before.png", pairs_per_row=4)

    budget = {} if steps is None else {"steps": steps, "prior_steps": steps // 2}
    history = model.fit(train, seed=args.seed, progress=False, **budget)
    after = {"nll": nll(model, held_out, samples, progress=False).mean_nats,
             "psnr": reconstruction_psnr(model, held_out).mean().item()}
    save_pairs(held_out[:16], model.reconstruct(held_out[:16]), args.out / "held_out_after.png", pairs_per_row=4)
    model.sample(16, generator=torch.Generator().manual_seed(args.seed), progress=False).save_grid(
        args.out / "omniglot_samples.png", nrow=4)
    folder = model.save_pretrained(args.out / "np-draw-omniglot-finetuned",
                                   card={"dataset": f"{len(train)} Omniglot evaluation-alphabet drawings",
                                         "notes": "examples/fine_tune_omniglot.py: the bundled MNIST model, "
                                                  "fine-tuned with model.fit(images)."})

    print(f"trained on {len(train)} drawings; scored on {len(held_out)} held-out ones")
    print(f"held-out bound ({samples} samples): {before['nll']:.1f} -> {after['nll']:.1f} nats")
    print(f"held-out reconstruction PSNR: {before['psnr']:.2f} -> {after['psnr']:.2f} dB")
    kept = "the starting weights" if history.best_epoch == -1 else f"round {history.best_epoch + 1}"
    print(f"validation bound {history.val_bound_start:.1f} -> {min(history.val_bound):.1f} nats (kept {kept})")
    print(f"wrote {folder} (NPDraw.from_pretrained({str(folder)!r})) and pictures in {args.out}")


if __name__ == "__main__":
    main()
