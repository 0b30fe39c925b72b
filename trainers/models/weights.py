"""Pretrained weights through torchvision's weights API, with a clear answer when offline.

torchvision downloads into TORCH_HOME/hub/checkpoints/<file>. When that file is missing and
the download cannot happen, we stop at once and name the file, the folder and the URL, so a
person can fetch it on another machine and copy it over (or train from scratch).
"""
import os
import socket
from pathlib import Path

import torch
import torchvision

from ..errors import WeightsUnavailable


def default_weights(arch: str):
    """torchvision's recommended weights enum member for an architecture."""
    return torchvision.models.get_model_weights(arch).DEFAULT


def weights_file(arch: str) -> Path:
    """Where torch looks for (and caches) the weights file of `arch`."""
    url = default_weights(arch).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def load_pretrained_state(arch: str) -> dict:
    """The state dict of `arch`'s pretrained weights, from the cache or a download."""
    weights = default_weights(arch)
    path = weights_file(arch)
    if not path.is_file():
        offline = os.environ.get("DARKROOM_OFFLINE") == "1"
        if not offline:
            previous = socket.getdefaulttimeout()
            socket.setdefaulttimeout(15)  # a closed network should fail fast, not hang
            try:
                return weights.get_state_dict(progress=False)
            except Exception:
                pass
            finally:
                socket.setdefaulttimeout(previous)
        raise WeightsUnavailable(
            f"Pretrained weights for {arch} are not on this machine and could not be downloaded. "
            f"Torch looks for the file {path.name} in the folder {path.parent}. "
            f"Download it from {weights.url} and put it there, or set pretrained off to train from scratch."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsUnavailable(
            f"The weights file {path} could not be read ({type(e).__name__}: {e}). "
            f"Delete it and download it again from {weights.url}, or set pretrained off."
        )
