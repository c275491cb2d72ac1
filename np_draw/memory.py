"""The machine's memory, and how the C allocator hands large blocks to torch on the CPU, which decides how often a
step waits for fresh pages."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
from collections.abc import Iterator

logger = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP = 2**31 - 1  # the largest value mallopt's int takes: no block mapped on its own, none given back
# After the block: the largest thresholds glibc's own adjustment reaches (32 MiB, and twice that for trimming), which
# a process that has freed large blocks runs with anyway
_AFTER_MMAP, _AFTER_TRIM = 32 * 2**20, 64 * 2**20


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the system does not say (Windows, macOS without sysconf)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


@contextlib.contextmanager
def keeping_freed_memory() -> Iterator[bool]:
    """Inside the block, the C allocator keeps freed memory for reuse: with glibc, blocks of any size come from the
    heap and freed ones stay there, instead of being mapped afresh for each request over 32 MiB (less, early in a
    process) and given back to the operating system when freed. After it, the freed memory is given back
    (``malloc_trim``) and blocks over 32 MiB are mapped afresh again.

    A fresh block costs a page fault per 4 KiB at its first use, and a training step's activations are that large:
    at CelebA's 64 x 64 px and batch 64 a step met about 316,000 faults, a third of its time on a CPU
    (``benchmarks/bench_allocator.py``). The price is a higher peak: memory freed in the heap is reused only by
    blocks that fit in it, so a run's peak grows (``benchmarks/bench_fit_memory.py``). :meth:`np_draw.NPDraw.fit`
    trains inside this block on the CPU. The setting is the whole process's, other threads' allocations included.
    Yields whether it took effect: False where the C library is not glibc (musl, macOS, Windows), whose
    allocators are left as they are.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        logger.debug("the C library is not glibc: its allocator is left as it is")
        yield False
        return
    libc = ctypes.CDLL("libc.so.6")
    kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP) and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP))
    # Nothing a user acts on when it works; a refusal explains a slower run
    if kept:
        logger.debug("the C allocator keeps freed memory for reuse until the block ends")
    else:
        logger.info("glibc refused to keep freed memory for reuse; large tensors stay fresh memory at every use")
    try:
        yield kept
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP)
        libc.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM)
        libc.malloc_trim(0)
