"""Fine-tune the bundled MNIST model on 100 Omniglot characters, and compare reconstructions before and after.

    python examples/fine_tune_omniglot.py                      # the 100 characters shipped in tests/fixtures
    python examples/fine_tune_omniglot.py --data ../shared/data --count 2000 --epochs 20

The MNIST part bank is kept: its 5x5 stroke pieces draw Omniglot characters too. The prior (where and which parts)
and the encoder and decoder are trained on the new characters. Writes, under --out: the fine-tuned model folder,
reconstructions before and after (each character beside its reconstruction) and samples of the fine-tuned model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from np_draw import NPDraw
from np_draw.data import load_dataset
from np_draw.images import save_pairs

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "omniglot_100.npz"


def load_characters(data: Path | None, count: int, seed: int) -> torch.Tensor:
    """``count`` Omniglot evaluation images, uint8 (N, 1, 28, 28): the fixture, or drawn at random from --data."""
    if data is None:
        images = torch.from_numpy(np.load(FIXTURE, allow_pickle=False)["images"])[:, None]
        if count > len(images):
            raise SystemExit(f"--count {count}: the fixture holds {len(images)} characters; use --data for more")
        return images[:count]
    images = load_dataset("omniglot", data, "test")
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
    return images[chosen.sort().values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_outputs"), help="output folder (created)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the data folder holding omniglot/evaluation_28x28.npz (default: the 100-image fixture)")
    parser.add_argument("--count", type=int, default=100, help="how many characters to train on (default 100)")
    parser.add_argument("--epochs", type=int, default=10, help="encoder/decoder epochs (default 10)")
    parser.add_argument("--prior-epochs", type=int, default=5, help="prior epochs (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    characters = load_characters(args.data, args.count, args.seed)
    shown = characters[:16].float() / 255
    model = NPDraw.from_pretrained("mnist")
    before = model.reconstruct(shown)
    save_pairs(shown, before, args.out / "omniglot_reconstructions_before.png", pairs_per_row=4)

    history = model.fit(characters, fit_bank=False, epochs=args.epochs, prior_epochs=args.prior_epochs,
                        batch_size=20, seed=args.seed, progress=False)
    after = model.reconstruct(shown)
    save_pairs(shown, after, args.out / "omniglot_reconstructions_after.png", pairs_per_row=4)
    model.sample(16, generator=torch.Generator().manual_seed(args.seed), progress=False).save_grid(
        args.out / "omniglot_samples.png", nrow=4)
    folder = model.save_pretrained(args.out / "np-draw-omniglot-finetuned",
                                   card={"dataset": f"{len(characters)} Omniglot evaluation characters",
                                         "notes": "examples/fine_tune_omniglot.py: the bundled MNIST model, "
                                                  "fine-tuned with its part bank kept."})

    def error(reconstruction: torch.Tensor) -> float:
        return (reconstruction - shown).abs().mean().item()

    print(f"mean absolute reconstruction error of 16 characters: {error(before):.4f} before, "
          f"{error(after):.4f} after fine-tuning")
    print(f"prior validation loss {history.prior_val[0]:.1f} -> {history.prior_val[-1]:.1f} nats; "
          f"validation bound {history.val_bound[0]:.1f} -> {history.val_bound[-1]:.1f} nats")
    print(f"wrote {folder} (NPDraw.from_pretrained({str(folder)!r})) and pictures in {args.out}")


if __name__ == "__main__":
    main()
