"""What one epoch's heatmaps cost: trainers.cam.layer_cam, which takes the class score's gradient
at the explained layer only (torch.autograd.grad), against the same Layer-CAM by backward() through
the whole network to every weight (how it was computed before), on the same models and pictures in
one run. Prints seconds per call for each and their ratio.

    flock /tmp/bench.lock .venv/bin/python bench/heatmap_cost.py --repeats 5

The models are the ones EpochInternals explains after every epoch: a ResNet classifier and a
ResNet U-Net segmenter, untrained (the cost does not depend on the weights), 4 pictures each.
"""

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from trainers.cam import _normalise, class_indices, class_score, default_layer, find_layer, layer_cam  # noqa: E402
from trainers.hooks import no_inplace  # noqa: E402
from trainers.models import ResNetClassifier  # noqa: E402
from trainers.models.unet import UNet  # noqa: E402


def layer_cam_by_backward(model, x, layer):
    """The reference: Layer-CAM with a hook on the layer's output and score.backward()."""
    module, seen = find_layer(model, layer), {}

    def keep(m, inputs, output):
        seen["a"] = output
        output.register_hook(lambda grad: seen.__setitem__("g", grad))

    model.eval()
    with torch.enable_grad(), no_inplace(model):
        handle = module.register_forward_hook(keep)
        try:
            logits = model(x.detach().clone().requires_grad_(True))
            class_score(logits, class_indices(logits, None)).backward()
        finally:
            handle.remove()
            model.zero_grad(set_to_none=True)
    a, g = seen["a"].detach().float(), seen["g"].float()
    return _normalise((F.relu(g) * a).sum(1), x.shape[-2:])


def seconds(fn, repeats):
    fn()  # the first call allocates
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = [
        ("classify resnet18, 128 px", ResNetClassifier("resnet18", 10, pretrained=False), 128),
        ("classify resnet34, 128 px", ResNetClassifier("resnet34", 10, pretrained=False), 128),
        ("classify resnet18, 224 px", ResNetClassifier("resnet18", 10, pretrained=False), 224),
        ("segment U-Net resnet18, 128 px", UNet("resnet18", n_out=3), 128),
    ]
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} calls, 4 pictures")
    for name, model, size in cases:
        x = torch.randn(4, 3, size, size)
        layer = default_layer(model)
        ours = layer_cam(model, x, None, layer)
        reference = layer_cam_by_backward(model, x, layer)
        assert torch.allclose(ours, reference, atol=1e-5), f"{name}: the two heatmaps differ"
        new = seconds(partial(layer_cam, model, x, None, layer), args.repeats)
        old = seconds(partial(layer_cam_by_backward, model, x, layer), args.repeats)
        print(f"{name:32s} gradient at the layer {new:.3f} s, backward to every weight {old:.3f} s: {old / new:.2f}x")


if __name__ == "__main__":
    main()
