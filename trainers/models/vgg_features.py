"""The convolutional part of an ImageNet-trained VGG16 with batch norm, for the feature loss.

Only `features` is built and loaded (the classifier's 120M parameters are never needed), from
torchvision's weights file through `load_pretrained_state`, which answers clearly offline.
"""
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from .weights import load_pretrained_state, weights_file

ARCH = "vgg16_bn"


def vgg16_bn_features(state: dict | None = None) -> nn.Sequential:
    """VGG16-BN's feature layers; `state` is a torchvision state dict (its features.* keys are used)."""
    features = make_layers(cfgs["D"], batch_norm=True)
    if state is not None:
        prefix = "features."
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        features.load_state_dict(own)
    return features


def pretrained_vgg_features() -> nn.Sequential:
    """Pretrained features (raises WeightsUnavailable with the file and folder when missing)."""
    return vgg16_bn_features(load_pretrained_state(ARCH))


def vgg_weights_present() -> bool:
    return weights_file(ARCH).is_file()


def layers_before_pools(features: nn.Sequential) -> list:
    """Indices of the layers just before each max pool (fastai's lesson 14 choice)."""
    return [i - 1 for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]

