"""Models: torchvision bodies with heads shaped for each task."""
from .resnet import RESNETS, ResNetClassifier, resnet_body, body_channels
from .weights import load_pretrained_state, resolve_pretrained, weights_file, weights_status

__all__ = ["RESNETS", "ResNetClassifier", "resnet_body", "body_channels", "load_pretrained_state", "resolve_pretrained",
           "weights_file", "weights_status"]
