"""How long the LR finder takes on a restore dataset, and where its suggestion lands.

The bundled photos are crappified with the Data tab's defaults into a temporary workspace, then
`trainers.find_lr` runs with the restore task's defaults (as the Train tab's "Find learning rate"
does) on this machine's CPU. Prints the seconds, the batches swept and whether the suggestion is
inside the sweep (not its lowest rate).

    .venv/bin/python bench/lr_finder_restore.py
"""
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    from studio.datasets.crappify import crappify_dataset
    from studio.datasets.samples import install_samples
    from studio.workspace import Workspace
    from trainers import RunConfig, find_lr

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(tmp)
        install_samples(ws)
        crappify_dataset(ws, "photos-crappy", str(ws.dataset_dir("photos")), seed=0, processes=1)
        settings = dict(RunConfig.defaults_for("restore"), task="restore",
                        data=str(ws.dataset_dir("photos-crappy")), pretrained=False, lr=None)
        config = RunConfig.from_dict({k: v for k, v in settings.items() if k in RunConfig.__dataclass_fields__})
        start = time.perf_counter()
        result = find_lr(config)
        seconds = time.perf_counter() - start
    lrs, suggestion = result["lrs"], result["suggestion"]
    inside = lrs[0] < suggestion <= lrs[-1]
    print(f"restore LR finder on the crappified bundled photos: {seconds:.1f} s, {len(lrs)} batches swept "
          f"({lrs[0]:.1e} to {lrs[-1]:.1e}), suggestion {suggestion:.2e}, "
          f"{'inside the sweep' if inside else 'AT THE EDGE of the sweep'}")


if __name__ == "__main__":
    main()
