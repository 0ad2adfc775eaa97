"""CPU runtime policy: torch thread counts for training and decoding, and glibc heap retention.

Both the training loop (``common/train/loop.py``) and the HF generation backend
(``common/models/generation.py``) run on shared, often oversubscribed CPUs; the measurements behind each
rule are in the function docstrings. GPU runs are untouched by everything here.
"""
from __future__ import annotations

import contextlib
import os
import time


def busy_cpus_elsewhere(samples: int = 5, interval_s: float = 0.01) -> float:
    """CPUs other tasks keep busy now: the median runnable-task count of ``/proc/loadavg`` minus this reader.

    The 1-minute load average also counts what this very process just did: a pipeline's training
    stage that starts right after a 2-thread stage reads a load near 2 and would fall back to one
    thread for the whole stage (seen here: the math loop's SFT on one thread after the coder
    stages, on an otherwise idle 2-core machine). The instantaneous runnable count sees only what
    runs now. Falls back to the load average where ``/proc/loadavg`` does not exist (not Linux);
    raises OSError where neither is available.
    """
    try:
        counts = []
        for i in range(samples):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)  # this reading thread runs too
            if i + 1 < samples:
                time.sleep(interval_s)
        return float(sorted(counts)[len(counts) // 2])
    except (OSError, IndexError, ValueError):
        return os.getloadavg()[0]


def cpu_threads(local_world_size: int = 1, current: int | None = None) -> int:
    """Intra-op threads for one CPU training process.

    ``OMP_NUM_THREADS`` when set. Otherwise the smallest of: ``current`` (torch's setting,
    so an explicit ``torch.set_num_threads`` is never raised), the CPUs this process may run
    on (``os.sched_getaffinity``) shared among the ranks of this machine (accelerate's rule),
    and the CPUs that other tasks leave idle (:func:`busy_cpus_elsewhere`) plus one: an OpenMP
    barrier waits for its slowest thread, so on an oversubscribed CPU every extra thread
    stalls the step (measured on a shared 2-core machine at load 5: 2 threads trained the
    4M-parameter tiny model 10x slower than 1). At least 1. Thread count does not change
    the numerics of the tiny fixture (bitwise-identical losses with 1 and 2 threads).
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API on this platform
        cpus = os.cpu_count() or 1
    threads = cpus // max(1, local_world_size)
    try:
        threads = min(threads, int(cpus - busy_cpus_elsewhere()) + 1)
    except OSError:  # no load information on this platform
        pass
    if current is not None:
        threads = min(threads, current)
    return max(1, threads)


def retain_freed_memory() -> bool:
    """On glibc, keep freed memory in the process heap instead of giving it back to the OS.

    glibc's default trims the heap top and unmaps large blocks as soon as they are free, so
    every training step page-faults its activations and gradients back in (measured with the
    tiny model on CPU: ~20k minor faults per step, ~3% of the step's CPU time; ~300 with this).
    Sets ``M_MMAP_THRESHOLD`` to 32 MiB (blocks up to that size come from the heap) and
    ``M_TRIM_THRESHOLD`` to 1 GiB, for the whole process and its lifetime; resident memory then
    stays near its peak, as with PyTorch's caching allocators. Returns False where not glibc.
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


@contextlib.contextmanager
def cpu_threads_for(model):
    """Limit torch's intra-op threads while decoding on CPU; restores the setting afterwards.

    Decoding runs many tiny ops: OpenMP barriers cost more than they save for small
    models, and on an oversubscribed CPU (load average above the core count) every
    barrier stalls: measured on a shared 2-core machine at load 9-12, 2 threads
    decoded the tiny model 50x and SmolLM2-135M 6x slower than 1 thread.
    """
    import torch

    if next(model.parameters()).device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    n_params = sum(p.numel() for p in model.parameters())
    try:
        idle = (os.cpu_count() or 1) - busy_cpus_elsewhere()
    except OSError:  # no load information on this platform
        idle = float(before)
    threads = 1 if n_params < 20_000_000 else max(1, min(before, int(idle)))
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
