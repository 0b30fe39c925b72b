"""How often heatmaps of a small classifier trained from scratch point at the evidence.

Trains the bright-square classifier of tests/test_hooks_cam.py (classes left, right, none;
ResNet-18 from scratch, 96 px, 5 epochs) once per seed and per thread count, and prints for
CAM, Grad-CAM and Layer-CAM at layer4 and Grad-CAM at layer1 the share of held-out pictures
whose heatmap peaks inside the square, then the minimum, median and maximum over the runs.
The test suite asserts only what holds on every CPU (tests/test_hooks_cam.py); the spread
between seeds and machines lives here.

    python bench/heatmap_localisation.py [--seeds 0 1 2] [--threads 1 2]
"""
import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from square_data import SIZE, hit_fraction, write_square_classes  # noqa: E402


def one_run(seed: int, threads: int) -> dict:
    from studio.checkpoints import load_checkpoint
    from trainers import fit
    from trainers.cam import cam, grad_cam, layer_cam, peak

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        where = write_square_classes(root / "data", per_class=32, seed=seed)
        config = {"task": "classify", "data": str(root / "data"), "arch": "resnet18", "epochs": 5,
                  "batch_size": 16, "image_size": SIZE, "lr": 2e-3, "freeze_epochs": 0, "pretrained": False,
                  "seed": seed, "extra": {"flip": False, "activation_stats": False}}
        torch.set_num_threads(threads)
        fit(config, root / "run")
        loaded = load_checkpoint(root / "run")
        names = list(where)
        x = torch.cat([loaded.preprocess(Image.open(root / "data" / "valid" / n)) for n in names])
        labels = torch.tensor([loaded.classes.index(n.split("/")[0]) for n in names])
        model = loaded.model
        result = {"accuracy": float((loaded.forward(x).argmax(1) == labels).float().mean())}
        heat = {"CAM": cam(model, x, labels), "Grad-CAM": grad_cam(model, x, labels),
                "Layer-CAM": layer_cam(model, x, labels), "Grad-CAM layer1": grad_cam(model, x, labels, layer="body.4")}
        result.update({k: hit_fraction(where, names, v, peak) for k, v in heat.items()})
        return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    rows = []
    for seed in args.seeds:
        for threads in args.threads:
            row = one_run(seed, threads)
            rows.append(row)
            print(f"seed {seed} threads {threads}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"{key:16s} min {min(values):.2f}  median {statistics.median(values):.2f}  max {max(values):.2f}")


if __name__ == "__main__":
    main()
