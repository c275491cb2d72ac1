"""What fresh memory costs a CPU process: page faults and time per training step and per sampled batch, with the C
allocator as it comes and inside ``np_draw.memory.keeping_freed_memory()`` (as fit trains on the CPU).

    cd benchmarks && python bench_allocator.py [--models mnist celeba] [--batch 64] [--steps 5]

For each bundled model: one VAE training step (``NPDraw.objective`` on a batch of uniform noise images and their
parses, backward, Adam) and one ``NPDraw.sample`` batch of 256, on one thread; the minor page faults
(``getrusage``) and milliseconds of each, the mean of ``--steps`` after two warm-up calls; every model with
glibc's defaults first, then all again inside the block.
Prints a markdown table and writes a JSON file.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time
from collections.abc import Callable

import torch
from common import table, write_json

from np_draw import NPDraw, parse
from np_draw.errors import run_main
from np_draw.memory import keeping_freed_memory


def faults_and_ms(work: Callable[[], object], steps: int) -> tuple[float, float]:
    """Mean minor page faults and milliseconds of ``work`` over ``steps`` calls, after two warm-up calls."""
    work()
    work()
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for _ in range(steps):
        work()
    return ((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps,
            (time.perf_counter() - start) / steps * 1e3)


def training_step(model: NPDraw, batch: int) -> Callable[[], None]:
    """One VAE-stage step of ``model`` (its encoder and decoder trained, prior and bank frozen) on noise images."""
    cfg = model.config
    images = torch.rand(batch, cfg.channels, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
    if cfg.channels == 1:
        images = torch.bernoulli(images, generator=torch.Generator().manual_seed(1))
    canvases = torch.nn.functional.avg_pool2d(images, cfg.image_size // cfg.canvas_size)
    parsed = parse(canvases, model.bank, model.grid)
    model.train()
    model.prior.eval().requires_grad_(False)
    optimizer = torch.optim.Adam([*model.encoder.parameters(), *model.decoder.parameters()], lr=1e-5)

    def step() -> None:
        terms = model.objective(images, parsed, tau=1.0, substitution=0.5)
        loss = (terms.negative_elbo + 50 * terms.parse_ce).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def measure(args: argparse.Namespace, results: dict, allocator: str) -> None:
    """Each model's training step and sample batch, into ``results["models"][name][allocator]``."""
    for name in args.models:
        sampler = NPDraw.from_pretrained(name)
        work = {"training step": training_step(NPDraw.from_pretrained(name), args.batch),
                "sample(256)": lambda sampler=sampler: sampler.sample(
                    256, torch.Generator().manual_seed(0), batch_size=256, progress=False)}
        results["models"][name][allocator] = {what: dict(zip(("faults", "ms"), faults_and_ms(fn, args.steps)))
                                              for what, fn in work.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mnist", "celeba"])
    parser.add_argument("--batch", type=int, default=64,
                        help="training batch (default 64; fit's own default, FitConfig.batch_size, is 150)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default="bench_allocator.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict = {"batch": args.batch, "models": {name: {} for name in args.models}}
    for allocator in ("glibc's defaults", "keeping_freed_memory()"):
        with keeping_freed_memory() if allocator != "glibc's defaults" else contextlib.nullcontext(True) as kept:
            if not kept:
                raise SystemExit("keeping_freed_memory() did not take effect here (not glibc?)")
            measure(args, results, allocator)
    rows = []
    for name, figures in results["models"].items():
        for what in ("training step", "sample(256)"):
            before, after = (figures[allocator][what] for allocator in figures)
            rows.append((name, what, f"{before['faults']:,.0f}", f"{before['ms']:.0f}", f"{after['faults']:,.0f}",
                         f"{after['ms']:.0f}", f"{before['ms'] / after['ms']:.2f}x"))
    table(f"Page faults and milliseconds per call, one thread (training batch {args.batch})", rows,
          ("model", "work", "faults, glibc's defaults", "ms", "faults, keeping_freed_memory()", "ms", "faster"))
    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
