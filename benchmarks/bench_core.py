"""Core benchmark on MNIST: bank fit and parse speed, parse PSNR, sampling throughput, FLOPs, parameter counts,
and the prior's attention/feed-forward widths compared on validation loss and speed.

    python benchmarks/bench_core.py --data ../shared/data/mnist [--out results.json]

Prints a markdown table per section and writes every figure to a JSON file.
"""

from __future__ import annotations

import argparse
import logging

import torch
from common import table, timed, write_json
from torch.utils.flop_counter import FlopCounterMode

from np_draw import NPDraw, NPDrawConfig, PriorConfig, parse, psnr, render
from np_draw.data import load_dataset
from np_draw.errors import run_main
from np_draw.training import FitConfig, evaluate_prior, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the MNIST folder (train.npz, test.npz)")
    parser.add_argument("--out", default="bench_core.json", help="where to write the JSON results")
    parser.add_argument("--batch", type=int, default=256, help="sampling batch size")
    parser.add_argument("--prior-steps", type=int, default=300,
                        help="training steps (batch 64) per prior variant in the width comparison")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    results: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}

    train = load_dataset("mnist", args.data, "train").float() / 255
    test = load_dataset("mnist", args.data, "test").float() / 255
    model = NPDraw(NPDrawConfig.preset("mnist"))
    grid, cfg = model.grid, model.config

    # 1. Part bank and parse of the 60,000 training images; PSNR on the 10,000 test images.
    fit_s, _ = timed(lambda: model.bank.fit(train, grid, empty_threshold=cfg.empty_threshold, seed=0))
    parse_s, _ = timed(lambda: parse(train, model.bank, grid, empty_threshold=cfg.empty_threshold), 2)
    test_latents = parse(test, model.bank, grid, empty_threshold=cfg.empty_threshold)
    test_psnr = psnr(render(model.bank, grid, test_latents.ids, test_latents.locs, test_latents.present), test)
    results["parse"] = {"bank_fit_s": fit_s, "parse_train_s": parse_s, "bank_plus_parse_s": fit_s + parse_s,
                            "test_psnr_db": test_psnr.mean().item(),
                            "drawn_steps_per_image": test_latents.present.sum(1).mean().item()}
    table("Part bank and parse (K=5, B=50, ε=0.01)", [
        ("bank fit, 60,000 train images (s)", f"{fit_s:.2f}"),
        ("parse, 60,000 train images (s)", f"{parse_s:.2f}"),
        ("bank + parse (s), target <= 10", f"{fit_s + parse_s:.2f}"),
        ("parse PSNR, 10,000 test images (dB, mean per image)", f"{test_psnr.mean().item():.2f}"),
        ("drawn steps per test image", f"{test_latents.present.sum(1).mean().item():.1f}"),
    ])

    # 2. Prior widths: the paper fixes depth 8 and width 64, not the heads or the feed-forward width.
    variants = {"4 heads, ff 128 (default)": PriorConfig(), "4 heads, ff 256": PriorConfig(ff_size=256),
                "2 heads, ff 64": PriorConfig(num_heads=2, ff_size=64)}
    val = test_latents[:2000]
    rows, results["prior_widths"] = [], {}
    noise = torch.rand(args.batch, cfg.num_steps, cfg.num_parts + cfg.num_steps + 1)
    subset = train[: round(64 * args.prior_steps / 0.9)]  # fit holds 10% out: about prior_steps steps of 64
    for name, prior_config in variants.items():
        torch.manual_seed(0)
        variant = NPDraw(NPDrawConfig.preset("mnist", prior=prior_config))
        variant.bank.load_state_dict(model.bank.state_dict())
        config = FitConfig(fit_bank=False, prior_epochs=1, prior_lr=1e-3, epochs=0, checkpoint_every=0)
        train_s, _ = timed(lambda v=variant, c=config: fit(v, subset, c, progress=False))
        prior = variant.prior
        val_nats = evaluate_prior(prior, model.bank, val)
        prior.sample(model.bank, noise[:8])
        sample_s, _ = timed(lambda p=prior: p.sample(model.bank, noise), 2)
        params = sum(p.numel() for p in prior.parameters())
        results["prior_widths"][name] = {"val_nats": val_nats, "train_step_s": train_s / args.prior_steps,
                                             "cached_samples_per_s": args.batch / sample_s, "params": params}
        rows.append((name, (f"val {val_nats:.2f} nats/seq, {train_s / args.prior_steps * 1000:.0f} ms/step, "
                           f"{args.batch / sample_s:.0f} samples/s, {params:,} params")))
        if prior_config == PriorConfig():
            model.prior.load_state_dict(prior.state_dict())
    table(f"Prior widths after about {args.prior_steps} steps of batch 64 (lr 1e-3); val = 2,000 test parses",
          rows)

    # 3. Sampling throughput at the batch size, prior alone (with and without the cache) and the whole model.
    model.eval()
    model.sample(8, progress=False)
    cached_s, _ = timed(lambda: model.prior.sample(model.bank, noise, use_cache=True), 3)
    full_s, _ = timed(lambda: model.prior.sample(model.bank, noise, use_cache=False), 1)
    whole_s, _ = timed(lambda: model.sample(args.batch, torch.Generator().manual_seed(0), batch_size=args.batch,
                                            progress=False), 3)
    with FlopCounterMode(display=False) as prior_flops:
        model.prior.sample(model.bank, noise)
    drawn = model.prior.sample(model.bank, noise)
    with FlopCounterMode(display=False) as decoder_flops:
        model.decode(drawn)
    prior_gflop = prior_flops.get_total_flops() / args.batch / 1e9
    decoder_gflop = decoder_flops.get_total_flops() / args.batch / 1e9
    results["sampling"] = {
        "batch": args.batch, "prior_cached_per_s": args.batch / cached_s,
        "prior_prefix_recompute_per_s": args.batch / full_s, "cache_speedup": full_s / cached_s,
        "whole_model_per_s": args.batch / whole_s,
        "gflop_per_sample": {"prior_cached": prior_gflop, "decoder": decoder_gflop,
                             "total": prior_gflop + decoder_gflop},
        "achieved_gflop_per_s": (prior_gflop + decoder_gflop) * args.batch / whole_s}
    table(f"Sampling, batch {args.batch}, T = {cfg.num_steps}", [
        ("prior with cache (samples/s)", f"{args.batch / cached_s:.0f}"),
        ("prior re-running the prefix (samples/s)", f"{args.batch / full_s:.1f}"),
        ("cache speed-up, target >= 8x", f"{full_s / cached_s:.1f}x"),
        ("whole model (samples/s), target >= 150", f"{args.batch / whole_s:.0f}"),
        ("GFLOP per sample: prior (cached) + decoder", (f"{prior_gflop:.4f} + {decoder_gflop:.4f} = "
                                                      f"{prior_gflop + decoder_gflop:.4f}")),
        ("achieved GFLOP/s", f"{(prior_gflop + decoder_gflop) * args.batch / whole_s:.1f}"),
    ])

    # 4. Parameter counts.
    counts = {name: sum(t.numel() for t in getattr(model, name).state_dict().values()
                        if t.is_floating_point()) for name in ("bank", "prior", "encoder", "decoder")}
    results["parameters"] = counts
    table("Parameters (floats in the state dict)", [(k, f"{v:,}") for k, v in counts.items()])

    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
