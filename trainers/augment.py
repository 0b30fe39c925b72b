"""Training-time augmentation and the plain validation transform (torchvision.transforms.v2)."""
import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor():
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def train_transform(size: int, mean, std, flip: bool = True, augment: bool = True):
    """Zoom/crop, optional horizontal flip, small rotation and lighting changes, then normalise."""
    if not augment:
        return valid_transform(size, mean, std)
    steps = [v2.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(0.85, 1.18), antialias=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [
        v2.RandomRotation(10),
        v2.ColorJitter(brightness=0.2, contrast=0.2),
        to_tensor(),
        v2.Normalize(mean, std),
    ]
    return v2.Compose(steps)


def valid_transform(size: int, mean, std):
    return v2.Compose([
        v2.Resize(size, antialias=True),
        v2.CenterCrop(size),
        to_tensor(),
        v2.Normalize(mean, std),
    ])


def denormalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo Normalize for display; returns values clamped to [0, 1]."""
    mean = torch.tensor(mean, device=x.device).view(-1, 1, 1)
    std = torch.tensor(std, device=x.device).view(-1, 1, 1)
    return (x * std + mean).clamp(0, 1)
