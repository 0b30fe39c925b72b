"""Image quality metrics for restoration: PSNR and SSIM, per image, averaged over the set.

Images are in [0, 1]. Restoration targets are (B, 2, C, H, W): the clean image and the
baseline (the crappy input, bicubic-upscaled for super-resolution); `input_psnr` and
`input_ssim` score that baseline, so the model's gain over doing nothing is visible.
"""
import torch
import torch.nn.functional as F

from .metrics import Metric


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (B,)."""
    mse = ((pred.clamp(0, 1) - target) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gaussian_window(size: int, sigma: float, channels: int, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5,
         clamp: bool = True) -> torch.Tensor:
    """Per-image SSIM (B,), Gaussian window (Wang et al. 2004), valid region only. A loss passes
    clamp=False: clamping would stop the gradient of every pixel outside [0, 1]."""
    pred = (pred.clamp(0, 1) if clamp else pred).float()
    target = target.float()
    c = pred.shape[1]
    window = min(window, pred.shape[-1], pred.shape[-2])
    w = _gaussian_window(window, sigma, c, pred.device)
    blur = lambda x: F.conv2d(x, w, groups=c)  # noqa: E731
    mu_x, mu_y = blur(pred), blur(target)
    var_x = blur(pred * pred) - mu_x**2
    var_y = blur(target * target) - mu_y**2
    cov = blur(pred * target) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


class _PerImage(Metric):
    score = staticmethod(psnr)
    of_input = False

    def accumulate(self, pred, target):
        clean = target[:, 0] if target.dim() == 5 else target
        image = target[:, 1] if self.of_input else pred
        values = self.score(image.float(), clean.float())
        self.total += values.sum().item()
        self.count += values.numel()


class PSNR(_PerImage):
    name = "psnr"


class SSIM(_PerImage):
    name = "ssim"
    score = staticmethod(ssim)


class InputPSNR(PSNR):
    name = "input_psnr"
    of_input = True


class InputSSIM(SSIM):
    name = "input_ssim"
    of_input = True
