"""Export a run as a bundle that runs without the studio: `python -m studio.export RUN_DIR --out BUNDLE_DIR`.

The bundle holds model.pt (TorchScript), model.onnx (when the onnx package is installed and
the architecture exports) and model.json (task, classes or codes, normalisation, input size,
studio version). No pickled Python code: exports that unpickle classes break across versions.
"""
import argparse
import io
import json
import sys
import warnings
from pathlib import Path

import torch

from studio import __version__
from studio.checkpoints import CheckpointError, LoadedModel, load_checkpoint
from trainers.atomic import write_bytes
from trainers.errors import WriteFailed


class ExportError(ValueError):
    """An export that cannot be made; the message says why."""


def metadata(loaded: LoadedModel) -> dict:
    info = loaded.info
    meta = {"format": "darkroom-bundle", "format_version": 1, "studio_version": __version__,
            "task": loaded.task, "arch": loaded.config.get("arch"),
            "mean": list(loaded.mean), "std": list(loaded.std),
            "image_size": loaded.image_size, "input_size": loaded.input_size(),
            "input": "RGB, shorter side resized to input_size then centre-cropped, scaled to [0, 1], "
                     "then (x - mean) / std; shape (N, 3, input_size, input_size)",
            "files": {"torchscript": "model.pt"}}
    # What the output is follows the task's Try view; the demo reads "view" to show it.
    meta["view"] = view = loaded.kind.try_view
    if view == "classes":
        meta["classes"] = loaded.classes
        meta["output"] = "logits (N, classes); softmax gives probabilities"
    elif view == "overlay":
        meta.update(codes=list(info["codes"]), void=info.get("void"), palette=info.get("palette"))
        meta["output"] = "logits (N, codes, H, W); argmax over dim 1 gives the code index per pixel"
    elif view == "before_after":
        meta["scale"] = int(info.get("scale", 1))
        meta["output"] = "image (N, 3, H*scale, W*scale) in [0, 1]"
        meta["input"] = ("RGB scaled to [0, 1], then (x - mean) / std; a whole picture goes through in overlapping "
                         "tiles of input_size x input_size (trainers/tiling.py), a smaller side padded to it")
    return meta


def exportable_tasks() -> list:
    from trainers.tasks import TASKS
    return [name for name, task in TASKS.items() if task.exports]


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        return True
    except ImportError:
        return False


def export_bundle(run_dir, out_dir, which: str = "best") -> dict:
    """Write the bundle; returns {"dir", "files", "onnx": "written" or the reason it was skipped}."""
    try:
        loaded = load_checkpoint(run_dir, which)
    except CheckpointError as e:
        raise ExportError(str(e))
    if not loaded.kind.exports:  # Task.exports: e.g. a generator from noise takes no picture
        names = exportable_tasks()
        listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
        raise ExportError(f"Bundles and demos are made for {listed} runs; this is a "
                          f"{loaded.task} run. Use it in the Try tab.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = loaded.model.eval()
    size = loaded.input_size()
    example = torch.zeros(1, 3, size, size)
    meta = metadata(loaded)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)  # deprecated in favour of torch.export, still the portable format
    write_bytes(buffer.getvalue(), out / "model.pt")
    files = ["model.pt"]

    if not onnx_available():
        onnx_note = "skipped: the onnx package is not installed (pip install onnx onnxruntime to add it)"
        (out / "model.onnx").unlink(missing_ok=True)
    else:
        try:
            buffer = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # The TorchScript-based exporter: it needs only onnx, not onnxscript.
                torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=["image"],
                                  output_names=["output"], opset_version=17,
                                  dynamic_axes={"image": {0: "batch"}, "output": {0: "batch"}})
            write_bytes(buffer.getvalue(), out / "model.onnx")
            files.append("model.onnx")
            meta["files"]["onnx"] = "model.onnx"
            onnx_note = "written"
        except Exception as e:  # some layers have no ONNX form; the TorchScript model still works
            onnx_note = f"skipped: this architecture does not export to ONNX ({type(e).__name__}: {e})"
            (out / "model.onnx").unlink(missing_ok=True)
    meta["onnx"] = onnx_note
    write_bytes((json.dumps(meta, indent=2) + "\n").encode("utf-8"), out / "model.json")
    files.append("model.json")
    return {"dir": str(out), "files": files, "onnx": onnx_note, "task": loaded.task}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.export",
                                     description="Export a Darkroom run as a TorchScript/ONNX bundle with model.json.")
    parser.add_argument("run_dir", help="the run's folder (it holds checkpoints/)")
    parser.add_argument("--out", required=True, help="the bundle folder to write")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"))
    args = parser.parse_args(argv)
    try:
        result = export_bundle(args.run_dir, args.out, args.checkpoint)
    except (ExportError, WriteFailed) as e:  # WriteFailed: a full disk, said in a sentence
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Exported the {result['task']} model to {result['dir']}: {', '.join(result['files'])}")
    print(f"ONNX: {result['onnx']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
