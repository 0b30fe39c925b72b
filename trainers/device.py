"""Which device a run uses: CUDA if present, else Apple's MPS, else the CPU."""
import torch

from .errors import ConfigError


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("CUDA was requested but no CUDA GPU is available; use --device cpu.")
        if requested == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError("MPS was requested but is not available on this machine; use --device cpu.")
        if requested.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"Unknown device {requested!r}; use cpu, cuda or mps.")
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_threads() -> int:
    """Threads a run's process gives torch: DARKROOM_CPU_THREADS, or OMP_NUM_THREADS (torchrun sets
    it), else every core this process may use but one, and at least one. The one left over is the
    studio's and the browser's: torch's threads spin while they wait, so when another process wants
    a core a thread per core stalls every small convolution. On the shared 2-core machine a digits
    epoch (32 px, resnet18) took 5-7 s with one thread and 86-370 s with two (docs/BENCHMARKS.md)."""
    import os

    for name in ("DARKROOM_CPU_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def use_cpu_threads() -> int:
    """Sets torch's intra-op threads to cpu_threads() for this process (a run's own); returns them."""
    threads = cpu_threads()
    torch.set_num_threads(threads)
    return threads
