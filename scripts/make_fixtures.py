"""Write the small test fixtures under tests/fixtures from the real data (run once; the fixtures are committed).

    python scripts/make_fixtures.py --data ../shared/data

mnist_300.npz: 300 MNIST test images (the tests' real images). omniglot_100.npz: one drawing each of 100 Omniglot
evaluation characters (for examples/fine_tune_omniglot.py, which must run without the shared data).
cifar10_100.npz: the first 100 CIFAR-10 test images (JPEG-decoded as training sees them, NCHW), for RGB metric tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from np_draw.data import load_arrays, load_dataset
from np_draw.errors import run_main

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the shared data folder (holds mnist/ and omniglot/)")
    args = parser.parse_args()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = load_dataset("mnist", args.data, "test").numpy()
    chosen = np.sort(rng.choice(len(images), 300, replace=False))
    np.savez_compressed(FIXTURES / "mnist_300.npz", images=images[chosen], indices=chosen)
    print(f"wrote {FIXTURES / 'mnist_300.npz'}: MNIST test images {chosen[:5]}...")

    omniglot = load_arrays("omniglot", args.data, "evaluation")
    characters = np.sort(rng.choice(np.unique(omniglot["char_ids"]), 100, replace=False))
    # One drawing per character, by a drawer chosen at random, so the 100 images are 100 different characters.
    picked = np.array([rng.choice(np.flatnonzero(omniglot["char_ids"] == c)) for c in characters])
    np.savez_compressed(FIXTURES / "omniglot_100.npz", images=omniglot["images"][picked], indices=picked,
                        char_ids=omniglot["char_ids"][picked])
    print(f"wrote {FIXTURES / 'omniglot_100.npz'}: Omniglot evaluation images {picked[:5]}...")

    cifar = load_dataset("cifar10", args.data, "test", limit=100).numpy()
    np.savez_compressed(FIXTURES / "cifar10_100.npz", images=cifar)
    print(f"wrote {FIXTURES / 'cifar10_100.npz'}: CIFAR-10 test images 0..99")


if __name__ == "__main__":
    run_main(main, __file__)
