"""How the C allocator hands large blocks to torch on the CPU, which decides how often a step waits for fresh pages."""

from __future__ import annotations

import ctypes
import logging
import platform

logger = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h) and the values set: every block from the heap, and a freed one kept there
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP = 2**31 - 1  # the largest value mallopt's int takes: no block is mapped on its own, none given back


def keep_freed_memory() -> bool:
    """Make the C allocator keep freed memory for reuse, for the whole process and for good: with glibc, blocks of
    any size come from the heap and freed ones stay there, instead of being mapped afresh for each request over
    32 MiB (less, early in a process) and given back to the operating system when freed.

    A fresh block costs a page fault per 4 KiB at its first use. A training step's activations are that large: at
    CelebA's 64 x 64 px and batch 64 a step met about 316,000 faults, a third of its time on a CPU
    (``benchmarks/bench_allocator.py`` measures it). The price is that the process keeps its peak memory until
    it ends. :meth:`np_draw.NPDraw.fit` calls this when it trains on the CPU; call it first in a process of your
    own that allocates large tensors again and again. Returns whether it took effect: False where the C library is
    not glibc (musl, macOS, Windows), whose allocators behave otherwise. Calling it again changes nothing.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        logger.debug("the C library is not glibc: its allocator is left as it is")
        return False
    mallopt = ctypes.CDLL("libc.so.6").mallopt
    kept = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP) and mallopt(_M_TRIM_THRESHOLD, _KEEP))
    logger.info("%s", "the C allocator keeps freed memory for reuse (np_draw.memory.keep_freed_memory)" if kept
                else "glibc refused to keep freed memory for reuse; large tensors stay fresh memory at every use")
    return kept
