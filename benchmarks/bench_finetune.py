"""Fine-tuning a pretrained model on a few of a new domain's images, against the model as it is and against training
from scratch for the same wall-clock time, scored on held-out images of the new domain.

    python benchmarks/bench_finetune.py --data ../shared/data [--cases mnist-omniglot] [--sizes 10 100 1000 0]

Cases (source model -> target data; training images / held-out test images):
- mnist -> omniglot: drawers 1-15 / drawers 16-20 of the same characters of the evaluation alphabets (67 characters
  chosen with the seed for sizes up to 1,000; all 659 for "all", whose test images are still those of the 67);
- omniglot -> mnist: MNIST training images / --test-images MNIST test images spread over the split;
- cifar10 -> celeba: the 4,800 training faces / --test-images of the 600 test faces (people seen in training),
  averaged down to the CIFAR-10 model's 32x32.

For each training-set size (0 means all) three models are scored: the pretrained one as it is, the pretrained one
after ``model.fit(images)`` with its defaults (FitConfig.finetune), and a new model of the same config trained from
scratch (FitConfig with the bundled models' learning rates) for as many prior steps as the fine-tune took and
about its wall time (first for the fine-tune's encoder/decoder steps; while such a run takes under 90 % of the
fine-tune's time, at most twice more with its steps scaled up by the ratio of the times: both times and all steps
are printed). Every fit holds 10 % of its images out for
model selection (at least one); no test image is ever trained on. Scores: the 50-sample importance bound (nats for
grey data, bits per dimension for colour), reconstruction PSNR, and the FID in the project's feature space between
as many samples as test images and the test images; beside them, the pretrained model's FID with samples of another
seed, which says how far an FID moves with the samples alone. Prints a markdown table and writes a JSON file.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
from common import table, write_json

from np_draw import NPDraw, NPDrawConfig
from np_draw.data import load_dataset, omniglot_by_drawer
from np_draw.errors import run_main
from np_draw.metrics import default_features, fid, nll, reconstruction_psnr
from np_draw.training import FitConfig, FitHistory

CASES = {"mnist-omniglot": ("mnist", "omniglot"), "omniglot-mnist": ("omniglot", "mnist"),
         "cifar10-celeba": ("cifar10", "celeba")}


def spread(images: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` of ``images``, every (N // count)-th: all classes of a split sorted by class."""
    return images[::max(1, len(images) // count)][:count]


def target_data(name: str, root: str, seed: int, test_images: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training pool for sizes up to 1,000, held-out test images, the whole training set), uint8 NCHW."""
    if name == "omniglot":
        return omniglot_by_drawer(root, seed=seed)
    train = load_dataset(name, root, "train")
    shuffled = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))]
    return shuffled, spread(load_dataset(name, root, "test"), test_images), shuffled


def fit_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images at the source model's size: CelebA's 64 px faces averaged over 2x2 blocks for the 32 px CIFAR-10
    model."""
    factor = images.shape[-1] // size
    if factor == 1:
        return images
    return torch.nn.functional.avg_pool2d(images.float(), factor).round().to(torch.uint8)


def score(model: NPDraw, test: torch.Tensor, samples: int) -> dict[str, float]:
    bound = nll(model, test, samples, seed=0, progress=False)
    generated = model.sample(len(test), generator=torch.Generator().manual_seed(0), progress=False).images
    unit, value = ("nats", bound.mean_nats) if model.config.channels == 1 else ("bpd", bound.mean_bits_per_dim)
    return {f"nll_{unit}": value, "recon_psnr_db": reconstruction_psnr(model, test).mean().item(),
            "fid": fid(generated, test, default_features(model), progress=False).value}


def cells(values: dict[str, float]) -> list[str]:
    """The table's cells of one score: bits per dimension to 3 decimals, the rest to 2."""
    return [f"{value:.3f}" if key.endswith("bpd") else f"{value:.2f}" for key, value in values.items()]


def steps_taken(history: FitHistory, config: FitConfig) -> tuple[int, int]:
    """Prior and encoder/decoder optimizer steps a fine-tune ran (max_passes cuts both on few images, early
    stopping may cut the second short)."""
    return history.prior_steps or 0, min(history.steps or 0, len(history.train) * config.eval_every)


def from_scratch(config: NPDrawConfig, images: torch.Tensor, tuned: FitConfig, prior_steps: int, steps: int,
                 budget_s: float) -> tuple[NPDraw, float, int]:
    """A new model trained from scratch (FitConfig with the bundled models' learning rates) for the fine-tune's
    prior steps and about its wall time ``budget_s``: first for the fine-tune's encoder/decoder steps, then, while a
    run takes under 90 % of the budget (a from-scratch step skips the parse canvas pass), twice more at most with
    the steps scaled by the budget over that run's time. Returns the last model, its fit's seconds and its
    encoder/decoder steps."""
    for attempt in range(3):
        torch.manual_seed(tuned.seed)
        scratch = NPDraw(config)
        start = time.perf_counter()
        scratch.fit(images, FitConfig(seed=tuned.seed, prior_steps=prior_steps, steps=steps,
                                      batch_size=tuned.batch_size, prior_batch_size=tuned.prior_batch_size,
                                      prior_lr=1e-3, decoder_lr=1e-3), progress=False)
        seconds = time.perf_counter() - start
        if seconds >= 0.9 * budget_s or attempt == 2:
            return scratch, seconds, steps
        steps = max(steps + 1, round(steps * budget_s / seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the shared data folder (holds mnist/, omniglot/, ...)")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 0], help="0: all training images")
    parser.add_argument("--test-images", type=int, default=500, help="for mnist and celeba (omniglot: 335)")
    parser.add_argument("--samples", type=int, default=50, help="importance samples of the bound (the paper: 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_finetune.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict = {"threads": torch.get_num_threads(), "args": vars(args), "cases": {}}
    rows = []
    for case in args.cases:
        source, target = CASES[case]
        pool, test, everything = target_data(target, args.data, args.seed, args.test_images)
        pretrained = NPDraw.from_pretrained(source)
        pool, test, everything = (fit_size(x, pretrained.config.image_size) for x in (pool, test, everything))
        test = test.float() / 255
        as_is = score(pretrained, test, args.samples)
        # How far the FID moves with the samples alone: the same model, samples of another seed.
        other = pretrained.sample(len(test), generator=torch.Generator().manual_seed(1), progress=False).images
        noise = fid(other, test, default_features(pretrained), progress=False).value
        results["cases"][case] = {"test_images": len(test), "pretrained": as_is,
                                  "pretrained_fid_other_samples": noise, "sizes": {}}
        rows.append((f"{source} -> {target}", "", "pretrained, samples of seed 1", "", "", f"{noise:.2f}", "", ""))
        for size in args.sizes:
            images = everything if size == 0 else pool[torch.randperm(len(pool), generator=torch.Generator()
                                                                       .manual_seed(args.seed))[:size]]
            tuned = NPDraw.from_pretrained(source)
            start = time.perf_counter()
            history = tuned.fit(images, seed=args.seed, progress=False)
            tuned_s = time.perf_counter() - start
            config = FitConfig.finetune(seed=args.seed)
            prior_steps, steps = steps_taken(history, config)
            scratch, scratch_s, scratch_steps = from_scratch(pretrained.config, images, config, prior_steps,
                                                              max(1, steps), tuned_s)
            figures = {"fine-tuned": score(tuned, test, args.samples), "from scratch": score(scratch, test,
                                                                                            args.samples)}
            results["cases"][case]["sizes"][str(size or len(images))] = {
                **figures, "images": len(images), "finetune_s": tuned_s, "scratch_s": scratch_s,
                "steps": {"prior": prior_steps, "vae": steps, "scratch_vae": scratch_steps},
                "kept_round": history.best_epoch}
            for way, values, seconds, vae in (("pretrained as is", as_is, None, None),
                                              ("fine-tuned", figures["fine-tuned"], tuned_s, steps),
                                              ("from scratch", figures["from scratch"], scratch_s, scratch_steps)):
                rows.append((f"{source} -> {target}", f"{len(images):,}", way, *cells(values),
                             "" if seconds is None else f"{seconds:.0f}",
                             "" if vae is None else f"{prior_steps} / {vae}"))
            write_json(args.out, results)
    table(f"Fine-tuning on held-out images of the target domain ({args.samples}-sample bound; "
          f"{torch.get_num_threads()} threads)", rows,
          ("case", "training images", "model", "NLL (nats or bits/dim)", "recon PSNR (dB)", "FID", "fit (s)",
           "steps (prior / VAE)"))
    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
