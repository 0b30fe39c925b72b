"""fastai's side of bench/run_vs_bare.py: `vision_learner` + `fit_one_cycle` on the same folder,
size, batch, epochs, rate and threads, from scratch. Run by run_vs_bare.py with fastai's own
Python (`--fastai-python`); fastai is not a dependency of the project. Prints one JSON line:
seconds per epoch (the whole fit divided by its epochs) and the last epoch's held-out accuracy.

A virtualenv for it that shares the project's torch (so nothing of several GB is downloaded):

    python3 -m venv /tmp/fastai-venv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/fastai-venv/lib/python3.11/site-packages/torch.pth
    /tmp/fastai-venv/bin/pip install fastai

    python bench/fastai_side.py FOLDER --size 48 --batch-size 32 --epochs 3 --lr 3e-3 --seed 42 --threads 1
"""

import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", help="an ImageFolder with train/ and valid/")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--batch-size", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    args = ap.parse_args()

    import fastai
    import torch
    from fastai.vision.all import ImageDataLoaders, Resize, accuracy, resnet18, set_seed, vision_learner

    torch.set_num_threads(args.threads)
    set_seed(args.seed, reproducible=True)
    start = time.perf_counter()
    dls = ImageDataLoaders.from_folder(
        args.folder, train="train", valid="valid", item_tfms=Resize(args.size), bs=args.batch_size, num_workers=0
    )
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(args.epochs, args.lr)
        seconds = (time.perf_counter() - start) / args.epochs
        _, acc = learn.validate()
    print(json.dumps({"fastai": fastai.__version__, "seconds_per_epoch": seconds, "accuracy": float(acc)}))


if __name__ == "__main__":
    main()
