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
