"""A standalone demo of one exported bundle:
`python -m studio.demo BUNDLE_DIR [--port N] [--share] [--auth USER:PASSWORD]`.

It loads only the bundle (model.json and the TorchScript model.pt: no studio workspace, no
pickled code), binds 127.0.0.1, and names its prediction endpoint "predict". The Share tab
runs it in its own process through `DemoProcess`, so a demo never blocks the studio.
Gradio is imported lazily: the studio imports this module for `DemoProcess` alone.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

MAX_UPLOAD = "10mb"
HOST = "127.0.0.1"
SHARE_OFFLINE = ("Could not create a public share link (no internet connection, or Gradio's share "
                 "service is unreachable). The demo still runs locally at {url}")


class DemoError(ValueError):
    """A bundle or an option the demo cannot use; the message says why."""


# --- the bundle -----------------------------------------------------------------

class Bundle:
    """model.json + model.pt, ready to predict; thread-safe (Gradio serves requests concurrently)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        meta_path, model_path = self.folder / "model.json", self.folder / "model.pt"
        if not meta_path.is_file() or not model_path.is_file():
            raise DemoError(f"{self.folder} is not a bundle: it needs model.json and model.pt "
                            "(make one with python -m studio.export RUN_DIR --out BUNDLE_DIR).")
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still portable
                self.model = torch.jit.load(str(model_path), map_location="cpu").eval()
        except Exception as e:
            raise DemoError(f"Cannot read the bundle in {self.folder}: {type(e).__name__}: {e}")
        self.task = self.meta.get("task")
        # What the output is: the exporter writes it; older bundles say it by their labels.
        self.view = self.meta.get("view") or ("classes" if "classes" in self.meta else
                                              "overlay" if "codes" in self.meta else "before_after")
        self.lock = threading.Lock()

    def preprocess(self, image):
        from torchvision.transforms import v2
        size = int(self.meta["input_size"])
        transform = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.ToImage(),
                                v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.meta["mean"], self.meta["std"])])
        return transform(image.convert("RGB"))[None]

    @torch.inference_mode()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            return self.model(x).float()

    def predict(self, image):
        """classes: {class: probability}; overlay: the picture tinted by class; before_after:
        (the picture, the whole picture restored)."""
        if image is None:
            raise DemoError("Upload a picture (or take one with the webcam) first.")
        if self.view == "before_after":
            return self.restored(image)
        out = self.run(self.preprocess(image))
        if self.view == "classes":
            probs = out.softmax(1)[0]
            return {c: float(p) for c, p in zip(self.meta["classes"], probs)}
        from PIL import Image
        if self.view == "overlay":
            import numpy as np
            size = int(self.meta["input_size"])
            shown = _centre_crop(image.convert("RGB"), size)
            table = np.array(self.meta.get("palette") or [[(37 * i) % 256, (91 * i) % 256, (173 * i) % 256]
                                                          for i in range(out.shape[1])], dtype=np.uint8)
            mask = Image.fromarray(table[out.argmax(1)[0].numpy()], "RGB")
            return Image.blend(shown, mask, 0.5)
        raise DemoError(f"The demo does not serve {self.task!r} models.")

    def restored(self, image) -> tuple:
        """(before, after): the whole picture restored in tiles of the bundle's input size, by the
        function the Try tab answers with (studio.checkpoints.restore_whole)."""
        from studio.checkpoints import restore_whole

        size, scale = int(self.meta["input_size"]), int(self.meta.get("scale", 1))
        return restore_whole(_at_traced_size(self.run, size, scale), image, self.meta["mean"], self.meta["std"],
                             size, scale)


def _at_traced_size(run, size: int, scale: int):
    """`run` for tiles of any size up to `size`. tiled() makes a tile smaller than `size` only for
    a picture smaller than it; a TorchScript model traced at size x size takes it as the studio's
    model does when its layers do not depend on the size (the CNN). Where the trace kept the size
    (an error or an output of the wrong shape), the tile is padded (edge pixels repeated) and the
    output cropped back: close to the studio's answer, not equal at the padded edge."""

    def forward(tiles: torch.Tensor) -> torch.Tensor:
        h, w = tiles.shape[-2:]
        if (h, w) != (size, size):
            try:
                out = run(tiles)
                if tuple(out.shape[-2:]) == (h * scale, w * scale):
                    return out
            except RuntimeError:
                pass
        padded = torch.nn.functional.pad(tiles, (0, max(0, size - w), 0, max(0, size - h)), mode="replicate")
        return run(padded)[..., : h * scale, : w * scale]

    return forward


def _centre_crop(image, size):
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))))
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def classes_title(classes, shown: int = 6) -> str:
    """'cat, dog, ... (10 classes)': the first few names, and how many there are when not all show."""
    names = ", ".join(map(str, classes[:shown]))
    return names if len(classes) <= shown else f"{names}, … ({len(classes)} classes)"


def build_demo(bundle: Bundle):
    import gradio as gr

    from studio.ui.pictures import PictureInput

    def predict(image):
        try:
            return bundle.predict(image)
        except DemoError as e:
            raise gr.Error(str(e), print_exception=False)

    # fixed heights: an uploaded picture would otherwise collapse the box to a thin strip
    image = PictureInput(type="pil", sources=["upload", "webcam"], label="Picture", height=360)
    if bundle.view == "classes":
        output = gr.Label(num_top_classes=min(5, len(bundle.meta["classes"])), label="Prediction")
    elif bundle.view == "before_after":
        output = gr.ImageSlider(type="pil", label="Before | after (drag)", height=360)
    else:
        output = gr.Image(type="pil", label="Result", height=360)
    title = f"Darkroom demo: {bundle.task}" + (f" ({classes_title(bundle.meta['classes'])})"
                                               if bundle.view == "classes" else "")
    return gr.Interface(fn=predict, inputs=image, outputs=output, api_name="predict", title=title,
                        flagging_mode="never")


def parse_auth(text):
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise DemoError("--auth must be USER:PASSWORD, both non-empty.")
    return (user, password)


def serve(bundle_dir, port=None, share=False, auth=None, block=True):
    """Launch the demo on 127.0.0.1; returns (demo, local url, share url or None)."""
    bundle = Bundle(bundle_dir)
    demo = build_demo(bundle)
    demo.launch(server_name=HOST, server_port=port, share=share, auth=parse_auth(auth), max_file_size=MAX_UPLOAD,
                prevent_thread_lock=True, quiet=True, show_error=True, ssr_mode=False)
    local = f"http://{HOST}:{demo.server_port}/"
    print(f"Darkroom demo of {bundle.folder} running at {local}", flush=True)
    share_url = getattr(demo, "share_url", None) if share else None
    if share and not share_url:
        print(SHARE_OFFLINE.format(url=local), flush=True)
    elif share_url:
        print(f"Public share link: {share_url}", flush=True)
    if block:
        demo.block_thread()
    return demo, local, share_url


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.demo", description="Serve one exported Darkroom bundle.")
    parser.add_argument("bundle_dir")
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: Gradio's first free one)")
    parser.add_argument("--share", action="store_true", help="also ask Gradio for a public share link")
    parser.add_argument("--auth", default=None, help="USER:PASSWORD required to open the demo")
    args = parser.parse_args(argv)
    try:
        parse_auth(args.auth)
        serve(args.bundle_dir, args.port, args.share, args.auth)
    except DemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# --- running a demo in its own process (the Share tab) --------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class DemoProcess:
    """`python -m studio.demo` in its own process; its output goes to `log_path`."""

    def __init__(self, bundle_dir, port=None, share=False, auth=None, log_path=None):
        parse_auth(auth)  # refuse a malformed USER:PASSWORD before starting anything
        self.bundle_dir, self.port = Path(bundle_dir), port or free_port()
        self.url = f"http://{HOST}:{self.port}/"
        self.log_path = Path(log_path) if log_path else self.bundle_dir / "demo.log"
        command = [sys.executable, "-m", "studio.demo", str(self.bundle_dir), "--port", str(self.port)]
        if share:
            command.append("--share")
        env = dict(os.environ)
        if auth:  # through the environment, not the command line that `ps` shows
            env["DARKROOM_DEMO_AUTH"] = auth
        root = Path(__file__).resolve().parents[1]
        env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [env.get("PYTHONPATH")] if p])
        with open(self.log_path, "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(root))

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 90) -> bool:
        """True once the demo has said where it runs; False if it died or took too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return False
            if "running at" in self.output():
                return True
            time.sleep(0.3)
        return False

    def stop(self, grace: float = 5) -> None:
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


if __name__ == "__main__":
    if os.environ.get("DARKROOM_DEMO_AUTH") and "--auth" not in sys.argv:
        sys.argv += ["--auth", os.environ["DARKROOM_DEMO_AUTH"]]
    sys.exit(main())
