"""Write the small test fixtures under tests/fixtures from the real data (run once; the fixtures are committed).

    python scripts/make_fixtures.py --data ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from np_draw.data import load_dataset

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the shared data folder (holds mnist/)")
    args = parser.parse_args()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = load_dataset("mnist", args.data, "test").numpy()
    chosen = np.sort(rng.choice(len(images), 300, replace=False))
    np.savez_compressed(FIXTURES / "mnist_300.npz", images=images[chosen], indices=chosen)
    print(f"wrote {FIXTURES / 'mnist_300.npz'}: MNIST test images {chosen[:5]}...")


if __name__ == "__main__":
    main()
