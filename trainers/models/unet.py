"""A U-Net built dynamically on a ResNet encoder (fastai's DynamicUnet, written out).

At construction a dummy image runs through the encoder to find where the grid size changes;
forward hooks on the layers just before each change record their activations, which the
decoder takes back as cross-connections. Each decoder block upsamples by pixel shuffle
(ICNR-initialised, optionally blurred), batch-normalises the cross-connection, concatenates
and applies two convolutions. The input itself is the last cross-connection, followed by a
residual block. Any input size works: where the decoder's grid and a cross-connection differ
by a pixel (odd sizes), the upsampled map is interpolated to the cross-connection's size.

Hooks are removed by `remove_hooks()` (also on deletion); without hooks
the same forward walks the encoder layer by layer and keeps the same activations, which is
what tracing and scripting need.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import resnet_body

BN_MOMENTUM = 0.5  # of every batch norm in the U-Net, encoder included (see UNet.__init__)
NORMS = ("batch", "group")


def conv_layer(ni, nf, ks=3, stride=1, bn=True, relu=True, init_zero_bn=False):
    layers = [nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=not bn)]
    nn.init.kaiming_normal_(layers[0].weight, nonlinearity="relu")
    if bn:
        norm = nn.BatchNorm2d(nf)
        if init_zero_bn:
            nn.init.zeros_(norm.weight)
        layers.append(norm)
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def icnr_(weight: torch.Tensor, scale: int = 2, init=nn.init.kaiming_normal_) -> torch.Tensor:
    """ICNR: every group of scale**2 output channels that pixel shuffle spreads over one
    scale x scale block gets the same kernel, so at initialisation the upsampled map is a
    nearest-neighbour upsample (no checkerboard)."""
    out_c, in_c, h, w = weight.shape
    sub = init(weight.new_zeros(out_c // scale**2, in_c, h, w))
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(scale**2, dim=0))
    return weight


class PixelShuffleICNR(nn.Module):
    """1x1 conv to nf*scale^2 channels, ReLU, pixel shuffle, and an optional blur (replication
    pad + 2x2 average pool) that removes what checkerboard remains during training."""

    def __init__(self, ni, nf=None, scale=2, blur=False):
        super().__init__()
        nf = nf or ni
        self.conv = nn.Conv2d(ni, nf * scale**2, 1)
        icnr_(self.conv.weight, scale)
        nn.init.zeros_(self.conv.bias)
        self.relu = nn.ReLU(inplace=True)
        self.shuffle = nn.PixelShuffle(scale)
        self.blur = nn.Sequential(nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1)) if blur else nn.Identity()

    def forward(self, x):
        return self.blur(self.shuffle(self.relu(self.conv(x))))


class SelfAttention(nn.Module):
    """SAGAN-style self-attention; gamma starts at 0 so it begins as the identity."""

    def __init__(self, n_channels):
        super().__init__()
        self.query = nn.Conv1d(n_channels, max(n_channels // 8, 1), 1, bias=False)
        self.key = nn.Conv1d(n_channels, max(n_channels // 8, 1), 1, bias=False)
        self.value = nn.Conv1d(n_channels, n_channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        size = x.shape
        flat = x.flatten(2)
        f, g, h = self.query(flat), self.key(flat), self.value(flat)
        beta = F.softmax(torch.bmm(f.transpose(1, 2), g), dim=1)
        return (self.gamma * torch.bmm(h, beta) + flat).view(size)


def group_norm_like(bn: nn.BatchNorm2d, groups: int = 32) -> nn.GroupNorm:
    """A group norm with a batch norm's affine start (zero-initialised ones stay zero). Groups
    divide the channels: 32 where they can, fewer where the channel count is odd (99 = 96 + 3
    input channels before the last block gives 1 group, a layer norm over the map)."""
    channels = bn.num_features
    norm = nn.GroupNorm(math.gcd(channels, groups), channels)
    with torch.no_grad():
        norm.weight.copy_(bn.weight)
        norm.bias.copy_(bn.bias)
    return norm


def to_group_norm(module: nn.Module) -> nn.Module:
    """Replace every batch norm under `module` by group_norm_like, in place. torchvision's
    ResNets take a norm_layer, but the decoder's norms are ours; one pass treats both alike."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, group_norm_like(child))
        else:
            to_group_norm(child)
    return module


class Gate(nn.Module):
    """x times a learned scalar that starts at 0 (a module, so it belongs to a layer group)."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.gain * x


class ResBlock(nn.Module):
    """x + two 3x3 convs (the second's BN starts at zero, so the block starts as identity)."""

    def __init__(self, n):
        super().__init__()
        self.convs = nn.Sequential(conv_layer(n, n), conv_layer(n, n, relu=False, init_zero_bn=True))

    def forward(self, x):
        return F.relu(x + self.convs(x))


class UnetBlock(nn.Module):
    def __init__(self, up_in_c, x_in_c, final_div=True, blur=False, self_attention=False):
        super().__init__()
        self.shuf = PixelShuffleICNR(up_in_c, up_in_c // 2, blur=blur)
        self.bn = nn.BatchNorm2d(x_in_c)
        ni = up_in_c // 2 + x_in_c
        nf = ni if final_div else ni // 2
        self.conv1 = conv_layer(ni, nf)
        self.conv2 = conv_layer(nf, nf)
        self.attention = SelfAttention(nf) if self_attention else nn.Identity()

    def forward(self, up_in, cross):
        up = self.shuf(up_in)
        if up.shape[-2:] != cross.shape[-2:]:  # odd sizes: the encoder rounded, we match it
            up = F.interpolate(up, cross.shape[-2:], mode="nearest")
        x = F.relu(torch.cat([up, self.bn(cross)], dim=1))
        return self.attention(self.conv2(self.conv1(x)))


class _Store:
    """Forward hook that keeps a layer's output (with its graph: the decoder backpropagates
    through it into the encoder)."""

    def __init__(self):
        self.stored = None

    def __call__(self, module, inputs, output):
        self.stored = output


class UNet(nn.Module):
    def __init__(self, arch="resnet34", n_out=3, pretrained=False, in_channels=3, scale=1, blur=False,
                 self_attention=False, image_residual=None, probe_size=64, bn_momentum=BN_MOMENTUM,
                 norm="batch"):
        """n_out: output channels (classes for segmentation, 3 for images). scale: output is
        scale times the input (super-resolution). image_residual: (mean, std) of the input
        normalisation; the output is then the input image (denormalised, resized) plus a
        learned correction that starts at zero.
        bn_momentum: of every batch norm (see below). norm: "batch" (the course's, and what a
        pretrained encoder was trained with) or "group" (each image's own statistics, below)."""
        if norm not in NORMS:
            raise ValueError(f"Unknown norm {norm!r}; choose one of {', '.join(NORMS)}.")
        super().__init__()
        self.encoder = resnet_body(arch, pretrained)
        self.scale = scale
        if image_residual is not None:
            mean, std = image_residual
            self.register_buffer("in_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("in_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.image_residual = image_residual is not None

        sizes, channels = self._probe(in_channels, probe_size)
        # Indices of encoder layers whose output is the last one at its grid size.
        self.cross_indices = [i for i in range(len(sizes) - 1) if sizes[i] != sizes[i + 1]]
        self._stores, self._handles = [], []
        self._attach_hooks()

        ni = channels[-1]
        self.middle = nn.Sequential(nn.BatchNorm2d(ni), nn.ReLU(), conv_layer(ni, ni * 2), conv_layer(ni * 2, ni))
        blocks = []
        cross = list(reversed(self.cross_indices))
        for k, idx in enumerate(cross):
            not_final = k != len(cross) - 1
            block = UnetBlock(ni, channels[idx], final_div=not_final, blur=blur and not_final,
                              self_attention=self_attention and k == len(cross) - 3)
            blocks.append(block)
            ni = block.conv2[0].out_channels
        self.blocks = nn.ModuleList(blocks)
        # The last cross-connection sits at half the input size for a ResNet: one more upsample.
        self.up_last = PixelShuffleICNR(ni) if sizes[cross[-1]] != (probe_size, probe_size) else nn.Identity()
        self.final = ResBlock(ni + in_channels)
        self.upscale = PixelShuffleICNR(ni + in_channels, scale=scale) if scale > 1 else nn.Identity()
        self.head = nn.Conv2d(ni + in_channels, n_out, 1)
        if self.image_residual:
            # The correction is gated by a scalar that starts at 0: the model starts as the plain
            # (upscaled) input, and an Adam step moves the gate by about one learning rate. A
            # zero-initialised head instead moved every one of its weights by a learning rate at
            # once, and the correction by lr x (its ~100 input channels): 0.1 to 0.3 on a 0-1
            # image after a single step, far past the few hundredths the damage needs. The restore
            # task starts differently (trainers/tasks/restore.py, open_correction): in a whole
            # run the gate at 0 was a saddle that never opened, and its one-cycle warm-up keeps
            # the first steps of an open gate small.
            self.residual_gate = Gate()
        # Batch norm's running statistics are what eval mode uses. With torch's momentum of
        # 0.1 a short run (a few dozen steps, as on a CPU) leaves 0.9**steps of their initial
        # values (0 and 1) in them and lags weights that still change fast, and the model
        # scores far worse in eval mode than in training (-11 dB PSNR for restore after 8
        # steps, where batch statistics give -0.3). 0.5 follows the last few batches; a run of
        # a hundred steps or more does better with 0.1, whose statistics average more batches.
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = bn_momentum
        # Group norm normalises each image by its own statistics, in training as in eval mode.
        # Restoration from scratch needs it: batch norm's population statistics, gathered over
        # a few photos, did not fit photos of other content: after 300 steps, held-out 128 px
        # crops scored -0.2 dB against their input in eval mode and +0.34 dB with the same
        # weights normalising each crop by its own statistics (whole photos: -1.1 dB in eval
        # mode). With group norm the held-out gain grew from step to step (docs/BENCHMARKS.md).
        # Group norm is computed over the whole picture, so a network trained on small crops
        # sees a little shift on a whole photo.
        if norm == "group":
            to_group_norm(self)

    @torch.no_grad()
    def _probe(self, in_channels, size):
        was_training = self.encoder.training
        self.encoder.eval()
        x = torch.zeros(1, in_channels, size, size)
        sizes, channels = [], []
        for layer in self.encoder:
            x = layer(x)
            sizes.append(tuple(x.shape[-2:]))
            channels.append(x.shape[1])
        self.encoder.train(was_training)
        return sizes, channels

    # --- hooks ---------------------------------------------------------------
    def _attach_hooks(self):
        for idx in self.cross_indices:
            store = _Store()
            self._stores.append(store)
            self._handles.append(self.encoder[idx].register_forward_hook(store))

    @property
    def has_hooks(self) -> bool:
        return bool(self._handles)

    def remove_hooks(self):
        """Release the hooks; forward then collects cross-connections by walking the encoder."""
        for handle in self._handles:
            handle.remove()
        self._handles, self._stores = [], []

    def __del__(self):
        try:
            self.remove_hooks()
        except Exception:  # interpreter shutdown: attributes may already be gone
            pass

    def _encode(self, x):
        if self._handles:
            x = self.encoder(x)
            crosses = [s.stored for s in self._stores]
            for s in self._stores:  # do not keep a batch (and its graph) alive between calls
                s.stored = None
            return x, crosses
        crosses = []
        for i, layer in enumerate(self.encoder):
            x = layer(x)
            if i in self.cross_indices:
                crosses.append(x)
        return x, crosses

    # --- forward ---------------------------------------------------------------
    def forward(self, x):
        inp = x
        x, crosses = self._encode(x)
        x = self.middle(x)
        for block, cross in zip(self.blocks, reversed(crosses)):
            x = block(x, cross)
        x = self.up_last(x)
        if x.shape[-2:] != inp.shape[-2:]:
            x = F.interpolate(x, inp.shape[-2:], mode="nearest")
        x = self.final(torch.cat([x, inp], dim=1))
        x = self.head(self.upscale(x))
        if self.image_residual:
            base = inp * self.in_std + self.in_mean
            if self.scale > 1:
                base = F.interpolate(base, scale_factor=self.scale, mode="bicubic", align_corners=False)
            x = base + self.residual_gate(x)
        return x

    def layer_groups(self) -> list:
        """Early encoder, late encoder, decoder: freezing trains the decoder only."""
        decoder = nn.ModuleList([self.middle, self.blocks, self.up_last, self.final, self.upscale, self.head,
                                 getattr(self, "residual_gate", nn.Identity())])
        return [self.encoder[:6], self.encoder[6:], decoder]

