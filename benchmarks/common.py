"""Timing, peak-memory and table helpers shared by the benchmark scripts."""

from __future__ import annotations

import contextlib
import ctypes
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def per_second(count: int, fn: Callable[[], Any], repeat: int) -> float:
    """Items per second of ``fn`` (which handles ``count`` items), after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return count * repeat / (time.perf_counter() - start)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory_mib(fn: Callable[[], Any], device: torch.device | str = "cpu") -> float:
    """Peak memory that ``fn`` adds, in MiB: on CUDA the allocator's peak; on CPU the process's peak resident set
    (Linux VmHWM, reset through /proc/self/clear_refs) above its resident set before the call, after glibc has given
    back the freed memory it kept."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    # Freed memory the C allocator keeps for reuse (np_draw.memory.keeping_freed_memory, as fit and bench_train.py
    # run) is given back first: a step that reuses it would otherwise add nothing to the resident set and read 0.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) / 1024


def table(title: str, rows: list, header: tuple[str, ...] = ("what", "value")) -> str:
    """Print and return a markdown table of ``rows`` (sequences of cells)."""
    lines = [f"\n### {title}\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text)
    return text


def write_json(path: str | Path, results: dict) -> None:
    """Write the results and say where."""
    Path(path).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {path}")
