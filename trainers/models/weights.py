"""Pretrained weights through torchvision's weights API, with a clear answer when offline.

torchvision downloads into TORCH_HOME/hub/checkpoints/<file>. `pretrained` is "auto" by default:
the weights are used when that file is there or can be downloaded, and otherwise the run trains
from scratch and says so (`resolve_pretrained`). `pretrained: true` insists: when the file is
missing and the download cannot happen, we stop at once and name the file, the folder and the
URL, so a person can fetch it on another machine and copy it over (or train from scratch).
"""
import os
import socket
from pathlib import Path

import torch
import torchvision

from ..errors import WeightsUnavailable

DOWNLOAD_TIMEOUT_S = 15  # a closed network should fail fast, not hang


def default_weights(arch: str):
    """torchvision's recommended weights enum member for an architecture."""
    return torchvision.models.get_model_weights(arch).DEFAULT


def weights_file(arch: str) -> Path:
    """Where torch looks for (and caches) the weights file of `arch`."""
    url = default_weights(arch).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def offline() -> bool:
    """DARKROOM_OFFLINE=1: never try a download (tests, air-gapped machines)."""
    return os.environ.get("DARKROOM_OFFLINE") == "1"


def weights_status(arch: str) -> dict:
    """What a form shows before Start: are the weights here, and where would a file go."""
    path = weights_file(arch)
    return {"arch": arch, "present": path.is_file(), "file": path.name, "folder": str(path.parent),
            "url": default_weights(arch).url}


def _download(arch: str) -> bool:
    """Fetch the weights into torch's cache; False when the network is closed or the fetch fails."""
    if offline():
        return False
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        default_weights(arch).get_state_dict(progress=False)  # torch.hub caches it in weights_file
        return weights_file(arch).is_file()
    except Exception:
        return False
    finally:
        socket.setdefaulttimeout(previous)


def resolve_pretrained(setting, arch: str) -> tuple:
    """(use ImageNet weights?, a sentence for the log and the run's record).
    "auto" uses them when the file is cached or can be downloaded, else trains from scratch;
    True and False are kept as they are (True fails clearly later, when the model loads them)."""
    if setting is False:
        return False, f"{arch} from scratch (pretrained off)"
    if setting is True:
        return True, f"{arch} with ImageNet weights ({weights_file(arch).name})"
    path = weights_file(arch)
    if path.is_file() or _download(arch):
        return True, f"{arch} with ImageNet weights ({path.name}; pretrained auto)"
    return False, (f"{arch} from scratch: no ImageNet weights on this machine (pretrained auto). To use them, put "
                   f"{path.name} (from {default_weights(arch).url}) in {path.parent}.")


def load_pretrained_state(arch: str) -> dict:
    """The state dict of `arch`'s pretrained weights, from the cache or a download."""
    weights = default_weights(arch)
    path = weights_file(arch)
    if not path.is_file():
        if not offline():
            previous = socket.getdefaulttimeout()
            socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
            try:
                return weights.get_state_dict(progress=False)
            except Exception:
                pass
            finally:
                socket.setdefaulttimeout(previous)
        raise WeightsUnavailable(
            f"Pretrained weights for {arch} are not on this machine and could not be downloaded. "
            f"Torch looks for the file {path.name} in the folder {path.parent}. "
            f"Download it from {weights.url} and put it there, or set pretrained off (or auto) to train from scratch."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsUnavailable(
            f"The weights file {path} could not be read ({type(e).__name__}: {e}). "
            f"Delete it and download it again from {weights.url}, or set pretrained off."
        )
