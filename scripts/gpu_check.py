"""The GPU checks in one go, for a machine with CUDA at hand (about 8 minutes on one GPU):

    python scripts/gpu_check.py --out gpu_check.json            # then copy the tables into docs/results.md

1. the half-precision tests on CUDA (``NP_DRAW_TEST_DEVICE=cuda python -m pytest tests/test_precision.py``);
2. sample quality in float16 and bfloat16 against float32 for each bundled model: the mean log p(z) of 256 latents
   sampled with per-image seeds, under the float32 prior;
3. sampling throughput (images/s) per model and batch size, in float32 and bfloat16, with peak GPU memory;
4. whether the prior's step is launch-bound: its wall-clock microseconds per step by batch size, and on CUDA the
   share of them the GPU spends in kernels (torch.profiler); far below 1, the step waits for Python and kernel
   launches, and CUDA graphs or torch.compile of the step would pay (issue 20);
5. training throughput of fit's VAE step (images/s) per model at batch 64, float32 and bf16 autocast, with peak
   memory.

Prints markdown tables and writes the figures to --out; exits with 1 when the tests of step 1 fail. ``--device cpu
--quick`` runs a small version anywhere (tests/test_user_path.py runs it so the script cannot rot between GPU
sessions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import peak_memory_mib, per_second, table

from np_draw import NPDraw
from np_draw.errors import run_main

MODELS = ("mnist", "omniglot", "cifar10", "celeba")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_quality(name: str, device: torch.device, count: int) -> dict[str, float]:
    """Mean log p(z) under the float32 prior of ``count`` latents sampled in each dtype with the same seeds."""
    reference = NPDraw.from_pretrained(name, device=device)
    figures = {}
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        model = NPDraw.from_pretrained(name, device=device, dtype=dtype)
        generators = [torch.Generator(device).manual_seed(i) for i in range(count)]
        latents = model.sample(count, generators, progress=False).latents
        figures[str(dtype).removeprefix("torch.")] = reference.prior.log_prob(latents, reference.bank).mean().item()
    return figures


def sampling_speed(name: str, device: torch.device, batches: list[int], repeat: int) -> dict[str, dict]:
    figures = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = NPDraw.from_pretrained(name, device=device, dtype=dtype)
        for batch in batches:
            def run(b: int = batch, m: NPDraw = model) -> None:
                m.sample(b, torch.Generator(device).manual_seed(0), batch_size=b, progress=False)
                synchronize(device)

            figures[f"{str(dtype).removeprefix('torch.')}/{batch}"] = {
                "images_per_s": per_second(batch, run, repeat), "peak_mib": peak_memory_mib(run, device)}
    return figures


def step_time(name: str, device: torch.device, batches: list[int]) -> dict[str, dict]:
    """Per prior step of ``Prior.sample`` (float32, with the cache): wall-clock microseconds (the faster of two
    calls), and on CUDA the share of a profiled call's wall time that the GPU spends in kernels."""
    model = NPDraw.from_pretrained(name, device=device).eval()
    cfg = model.config
    figures = {}
    for batch in batches:
        noise = torch.rand(batch, cfg.num_steps, cfg.num_parts + cfg.num_steps + 1,
                           generator=torch.Generator().manual_seed(0)).to(device)

        def draw(b: torch.Tensor = noise) -> float:
            start = time.perf_counter()
            with torch.no_grad():
                model.prior.sample(model.bank, b)
            synchronize(device)
            return time.perf_counter() - start

        draw()
        wall = min(draw(), draw())
        busy = None
        if device.type == "cuda":
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiled:
                profiled_wall = draw()
            busy = sum(event.self_device_time_total for event in profiled.key_averages()) / 1e6 / profiled_wall
        figures[str(batch)] = {"step_us": wall / cfg.num_steps * 1e6, "gpu_busy": busy}
    return figures


def training_speed(name: str, device: torch.device, batch: int, repeat: int) -> dict[str, dict]:
    model = NPDraw.from_pretrained(name, device=device).train()
    model.prior.eval().requires_grad_(False)
    images = model.sample(batch, torch.Generator(device).manual_seed(0), progress=False).images
    parsed = model.parse(images)
    optimizer = torch.optim.Adam([*model.encoder.parameters(), *model.decoder.parameters()], lr=1e-4)
    figures = {}
    for label, autocast in (("float32", False), ("bf16 autocast", True)):
        def step(a: bool = autocast) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a):
                terms = model.objective(images, parsed, tau=0.5)
                loss = (terms.negative_elbo + 5 * terms.parse_ce).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            synchronize(device)

        figures[label] = {"images_per_s": per_second(batch, step, repeat), "peak_mib": peak_memory_mib(step, device)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="a small run: mnist only, few images, no test suite")
    parser.add_argument("--out", default="gpu_check.json")
    args = parser.parse_args()
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device must be a torch device such as 'cuda', 'cuda:1' or 'cpu', got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check.py: CUDA is not available here; run it on a GPU machine (or --device cpu --quick)")
    names = MODELS[:1] if args.quick else MODELS
    batches, repeat, count = ([1, 16], 1, 16) if args.quick else ([1, 16, 256, 1024], 3, 256)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    results: dict = {"device": name, "torch": torch.__version__, "models": {}}
    if not args.quick:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_precision.py"],
                              cwd=ROOT, env=dict(os.environ, NP_DRAW_TEST_DEVICE=args.device), capture_output=True,
                              text=True, check=False)
        results["tests"] = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
        results["tests_passed"] = done.returncode == 0
        print("tests on", args.device, ":", results["tests"])
    quality_rows, sampling_rows, step_rows, training_rows = [], [], [], []
    for name in names:
        quality = sample_quality(name, device, count)
        sampling = sampling_speed(name, device, batches, repeat)
        steps = step_time(name, device, batches)
        training = training_speed(name, device, 16 if args.quick else 64, repeat)
        results["models"][name] = {"log_prior": quality, "sampling": sampling, "steps": steps, "training": training}
        quality_rows.append((name, *(f"{quality[d]:.2f}" for d in ("float32", "float16", "bfloat16"))))
        sampling_rows += [(name, key, f"{v['images_per_s']:.0f}", f"{v['peak_mib']:.0f}") for key, v in sampling.items()]
        step_rows += [(name, key, f"{v['step_us']:.0f}", "-" if v["gpu_busy"] is None else f"{v['gpu_busy']:.0%}")
                      for key, v in steps.items()]
        training_rows += [(name, key, f"{v['images_per_s']:.0f}", f"{v['peak_mib']:.0f}") for key, v in training.items()]
    table(f"Sample quality by dtype: mean log p(z) under the float32 prior ({count} samples, {results['device']})",
          quality_rows, ("model", "float32", "float16", "bfloat16"))
    table(f"Sampling ({results['device']})", sampling_rows, ("model", "dtype/batch", "images/s", "peak MiB"))
    table(f"The prior's step ({results['device']}); GPU busy: its share in kernels, low when launch-bound", step_rows,
          ("model", "batch", "us per step", "GPU busy"))
    table(f"fit's VAE step ({results['device']})", training_rows, ("model", "precision", "images/s", "peak MiB"))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if not results.get("tests_passed", True):  # the figures are written, but an unattended run must not look green
        raise SystemExit(f"gpu_check.py: the tests on {args.device} failed: {results['tests']}")


if __name__ == "__main__":
    run_main(main, __file__)
