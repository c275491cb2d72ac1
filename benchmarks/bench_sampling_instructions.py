"""Instructions the CPU executes for the prior's steps, counted by valgrind's callgrind: a figure that does not move
with the machine's load or clock, for comparing two versions of the code where wall-clock figures do not settle (on a
shared machine two runs of the same code have differed by a third).

    cd benchmarks && python bench_sampling_instructions.py [--models mnist celeba] [--batches 1 64]
    PYTHONPATH=/path/to/other/checkout python bench_sampling_instructions.py ...   # another commit, to compare

For each model and batch, a child process under ``valgrind --tool=callgrind --instr-atstart=no`` loads the bundled
model, draws one warm-up batch of latents with ``Prior.sample`` on one thread, then counts the instructions of one
more (instrumentation switched on and off around it with ``callgrind_control``): the T steps' arithmetic and
everything Python and torch's dispatch do around it, which at small batches is most of it. The decoder is left out:
under valgrind its convolution library may pick other kernels than it does natively (it chooses by the CPU's
features), and counting them takes many minutes. Instructions are not time (a cache miss costs more than an add),
so a speed-up is confirmed by wall-clock figures on a quiet machine (bench_sampling_detail.py); a change that removes
work shows here whatever the machine is doing. Needs valgrind (Debian's package); each count takes 2-4 minutes,
most of it importing torch under valgrind. Prints a markdown table and writes a JSON file.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys

from common import table, write_json

from np_draw import NPDraw
from np_draw.errors import run_main

CHILD = """
import os, subprocess, sys, torch
from np_draw import NPDraw
name, batch = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
model = NPDraw.from_pretrained(name).eval()
cfg = model.config
noise = torch.rand(batch, cfg.num_steps, cfg.num_parts + cfg.num_steps + 1, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    model.prior.sample(model.bank, noise)
    subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True, capture_output=True)
    model.prior.sample(model.bank, noise)
    subprocess.run(["callgrind_control", "--instr=off", str(os.getpid())], check=True, capture_output=True)
"""


def instructions(name: str, batch: int) -> int:
    """Instructions of one ``Prior.sample`` batch of ``batch`` latent sequences of the bundled model ``name``."""
    run = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null",
                          sys.executable, "-c", CHILD, name, str(batch)], check=False, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode or not found:
        raise RuntimeError(f"valgrind failed for {name} at batch {batch}:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mnist", "celeba"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--out", default="bench_sampling_instructions.json")
    args = parser.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        parser.error(f"needs {' and '.join(missing)} on the PATH (Debian: apt-get install valgrind)")
    for name in args.models:  # here, not minutes later under valgrind, a name that names no model
        NPDraw.from_pretrained(name)
    results, rows = {}, []
    for name in args.models:
        for batch in args.batches:
            count = instructions(name, batch)
            results[f"{name}/{batch}"] = count
            rows.append((name, batch, f"{count / 1e6:,.0f}", f"{count / batch / 1e6:,.1f}"))
            print(f"{name} batch {batch}: {count:,} instructions", flush=True)
    table("Instructions of one batch of the prior's steps (Prior.sample) on one thread (callgrind)", rows,
          ("model", "batch", "millions per batch", "millions per image"))
    write_json(args.out, results)


if __name__ == "__main__":
    run_main(main, __file__)
