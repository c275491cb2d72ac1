"""Training throughput and peak memory of each stage of ``fit`` on MNIST, and the projected time of a full run.

    python benchmarks/bench_train.py --data ../shared/data/mnist [--channels 128] [--out bench_train.json]

Prints a markdown table and writes the figures to a JSON file.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import peak_memory_mib, per_second, table, write_json

from np_draw import Latents, NPDraw, NPDrawConfig, parse
from np_draw.data import load_dataset
from np_draw.errors import run_main
from np_draw.memory import keeping_freed_memory
from np_draw.training import DEFAULT_EPOCHS, DEFAULT_PRIOR_EPOCHS, FitConfig, adam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the MNIST folder")
    parser.add_argument("--channels", type=int, nargs="+", default=[128, 64],
                        help="encoder/decoder widths to measure (paper: 128)")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per stage")
    parser.add_argument("--out", default="bench_train.json")
    args = parser.parse_args()
    with keeping_freed_memory():  # as fit trains on the CPU
        measure(args)


def measure(args: argparse.Namespace) -> None:
    """The figures of each stage, printed and written to ``args.out``."""
    torch.manual_seed(0)
    images = load_dataset("mnist", args.data, "train").float() / 255
    defaults = FitConfig()
    n_train = round(len(images) * (1 - defaults.val_fraction))
    results: dict = {"threads": torch.get_num_threads(), "defaults": defaults.__dict__, "widths": {}}

    model = NPDraw(NPDrawConfig.preset("mnist"))
    start = time.perf_counter()
    model.bank.fit(images, model.grid)
    bank_s = time.perf_counter() - start
    parse_per_s = per_second(len(images), lambda: parse(images, model.bank, model.grid), 1)
    latents = parse(images, model.bank, model.grid)
    results.update(bank_fit_s=bank_s, parse_images_per_s=parse_per_s)

    prior = model.prior.train()
    optimizer = adam([{"params": prior.parameters(), "lr": defaults.prior_lr}])  # as fit makes it
    batch = latents[: defaults.prior_batch_size]

    def prior_step() -> None:
        loss = -prior.log_prob(batch, model.bank).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    prior_per_s = per_second(len(batch), prior_step, args.steps)
    prior_mib = peak_memory_mib(prior_step)
    results.update(prior_sequences_per_s=prior_per_s, prior_step_peak_mib=prior_mib)
    rows = [("bank fit, 60,000 images (s)", f"{bank_s:.1f}"), ("parse (images/s)", f"{parse_per_s:,.0f}"),
            (f"prior pretraining, batch {defaults.prior_batch_size} (sequences/s)", f"{prior_per_s:.0f}"),
            ("prior pretraining step, peak memory (MiB)", f"{prior_mib:.0f}")]
    prior.eval().requires_grad_(False)
    for width in args.channels:
        torch.manual_seed(0)
        vae = NPDraw(NPDrawConfig.preset("mnist", encoder_channels=width, decoder_channels=width))
        vae.bank.load_state_dict(model.bank.state_dict())
        vae.prior.load_state_dict(prior.state_dict())
        vae.prior.eval().requires_grad_(False)
        vae_optimizer = adam([{"params": [*vae.encoder.parameters(), *vae.decoder.parameters()], "lr": 1e-3}])
        x, parsed = torch.bernoulli(images[: defaults.batch_size]), latents[: defaults.batch_size]

        def vae_step(vae: NPDraw = vae, x: torch.Tensor = x, parsed: Latents = parsed,
                     optimizer: torch.optim.Optimizer = vae_optimizer) -> None:
            terms = vae.objective(x, parsed, tau=1.0, substitution=0.5)
            loss = (terms.negative_elbo + 50 * terms.parse_ce).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        vae_per_s = per_second(len(x), vae_step, args.steps)
        vae_mib = peak_memory_mib(vae_step)
        hours = (bank_s + 2 * len(images) / parse_per_s + DEFAULT_PRIOR_EPOCHS * n_train / prior_per_s
                 + DEFAULT_EPOCHS * n_train / vae_per_s) / 3600
        results["widths"][width] = {"vae_images_per_s": vae_per_s, "vae_step_peak_mib": vae_mib,
                                        "projected_full_training_h": hours}
        rows += [(f"VAE stage, width {width}, batch {defaults.batch_size} (images/s)", f"{vae_per_s:.0f}"),
                 (f"VAE step, width {width}, peak memory (MiB)", f"{vae_mib:.0f}"),
                 ((f"projected full MNIST training at the defaults ({DEFAULT_PRIOR_EPOCHS} prior epochs, "
                  f"{DEFAULT_EPOCHS} VAE epochs), width {width} (h)"), f"{hours:.2f}")]
    table("Training throughput and memory per stage (MNIST)", rows)
    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
