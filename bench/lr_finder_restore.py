"""How long the LR finder takes on a restore dataset, and where its suggestion lands.

The bundled photos are crappified with the Data tab's defaults into a temporary workspace, then
`trainers.find_lr` runs with the restore task's defaults (as the Train tab's "Find learning rate"
does) on this machine's CPU, for three seeds, with the CPU's network (the small residual CNN)
and with the U-Net a pretrained encoder or a GPU gets (from scratch here: its sweep costs the
same). Prints per sweep the seconds, the batches swept, the rule that chose the suggestion and
whether the suggestion is inside the sweep (above its lowest rate, at most its highest).

    flock /tmp/bench.lock nice -n 0 .venv/bin/python bench/lr_finder_restore.py [--nets cnn]
"""
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    import argparse

    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--nets", nargs="+", default=["cnn", "unet"], choices=["cnn", "unet"])
    args = parser.parse_args()

    from studio.datasets.crappify import crappify_dataset
    from studio.datasets.samples import install_samples
    from studio.workspace import Workspace
    from trainers import RunConfig, find_lr

    print(f"torch threads: {torch.get_num_threads()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(tmp)
        install_samples(ws)
        crappify_dataset(ws, "photos-crappy", str(ws.dataset_dir("photos")), seed=0, processes=1)
        for net in args.nets:
            for seed in (0, 1, 2):
                settings = dict(RunConfig.defaults_for("restore"), task="restore", seed=seed, pretrained=False,
                                data=str(ws.dataset_dir("photos-crappy")), lr=None, extra={"net": net})
                config = RunConfig.from_dict({k: v for k, v in settings.items()
                                              if k in RunConfig.__dataclass_fields__})
                start = time.perf_counter()
                result = find_lr(config)
                seconds = time.perf_counter() - start
                lrs, suggestion = result["lrs"], result["suggestion"]
                inside = lrs[0] < suggestion <= lrs[-1]
                print(f"restore ({net}, seed {seed}) LR finder on the crappified bundled photos: {seconds:.1f} s, "
                      f"{len(lrs)} batches swept ({lrs[0]:.1e} to {lrs[-1]:.1e}), suggestion {suggestion:.2e} "
                      f"by its {result['rule']!r} rule, {'inside the sweep' if inside else 'AT THE EDGE of the sweep'}",
                      flush=True)


if __name__ == "__main__":
    main()
