"""Export bundles that match the checkpoint; a standalone demo answers predictions, serves no
workspace file, and says so when a share link cannot be made (these machines are offline)."""
import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from studio.checkpoints import load_checkpoint
from studio.demo import Bundle, DemoError, DemoProcess, SHARE_OFFLINE, parse_auth
from studio.export import ExportError, export_bundle, main as export_main, onnx_available
from trainers import fit
from conftest import tiny_config, write_colour_classes


@pytest.fixture(scope="module")
def run_dir(module_tmp):
    root = module_tmp
    data = write_colour_classes(root / "data", per_class=10, size=32, classes=("red", "blue"))
    fit(tiny_config(data, epochs=1, extra={"activation_stats": False}), root / "run")
    return root / "run"


def inputs(n=4, size=32):
    torch.manual_seed(1)
    return torch.randn(n, 3, size, size)


def test_torchscript_and_onnx_match_the_checkpoint(run_dir, tmp_path, capsys):
    assert export_main([str(run_dir), "--out", str(tmp_path / "bundle")]) == 0
    printed = capsys.readouterr().out
    bundle = tmp_path / "bundle"
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["task"] == "classify" and meta["classes"] == ["blue", "red"]
    assert meta["input_size"] == 32 and len(meta["mean"]) == len(meta["std"]) == 3 and meta["studio_version"]
    x = inputs()
    expected = load_checkpoint(run_dir).model(x).detach()
    scripted = torch.jit.load(str(bundle / "model.pt"))
    assert torch.allclose(scripted(x), expected, atol=1e-5)
    if not onnx_available():
        assert "onnx package is not installed" in printed and not (bundle / "model.onnx").exists()
        pytest.skip("onnx is not installed: ONNX export skipped with a message")
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(bundle / "model.onnx"))
    got = session.run(None, {"image": x.numpy()})[0]
    assert np.allclose(got, expected.numpy(), atol=1e-4), np.abs(got - expected.numpy()).max()
    assert "ONNX: written" in printed


def test_export_of_a_run_without_checkpoint_says_why(tmp_path):
    with pytest.raises(ExportError, match="no checkpoint"):
        export_bundle(tmp_path, tmp_path / "out")
    assert export_main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2


def test_bundle_predicts_like_the_checkpoint_and_refuses_bad_options(run_dir, tmp_path):
    export_bundle(run_dir, tmp_path / "b")
    bundle = Bundle(tmp_path / "b")
    picture = Image.new("RGB", (40, 32), (200, 40, 40))
    probs = bundle.predict(picture)
    expected = dict(load_checkpoint(run_dir).probabilities(picture))
    assert set(probs) == {"blue", "red"}
    assert all(abs(probs[c] - expected[c]) < 1e-4 for c in probs)
    with pytest.raises(DemoError, match="not a bundle"):
        Bundle(tmp_path)
    with pytest.raises(DemoError, match="USER:PASSWORD"):
        parse_auth("nopassword")
    assert parse_auth("ann:secret") == ("ann", "secret")


def test_demo_process_serves_predictions_refuses_other_files_and_big_uploads_and_reports_offline_share(run_dir, tmp_path):
    from gradio_client import Client, handle_file

    export_bundle(run_dir, tmp_path / "bundle")
    secret = run_dir / "config.json"  # a workspace file the demo must never serve
    picture = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(picture)
    demo = DemoProcess(tmp_path / "bundle", share=True, log_path=tmp_path / "demo.log")
    try:
        assert demo.wait_ready(120), demo.output()
        client = Client(demo.url, verbose=False)
        result = client.predict(handle_file(str(picture)), api_name="/predict")
        assert result["label"] in ("red", "blue") and len(result["confidences"]) == 2
        for path in (secret, tmp_path / "bundle" / "model.json"):
            try:
                with urllib.request.urlopen(f"{demo.url}gradio_api/file={path}", timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as e:
                status = e.code
            assert status in (403, 404), f"{path} was served ({status})"
        import httpx
        from studio.demo import MAX_UPLOAD
        assert MAX_UPLOAD == "10mb"
        upload = f"{demo.url}gradio_api/upload"
        assert httpx.post(upload, files={"files": ("ok.png", picture.read_bytes())}, timeout=30).status_code == 200
        too_big = httpx.post(upload, files={"files": ("big.png", b"x" * (11 << 20))}, timeout=60)
        assert too_big.status_code == 413  # uploads over the demo's limit are refused
        deadline = time.monotonic() + 10
        message = SHARE_OFFLINE.split(" (")[0]
        while message not in demo.output() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert message in demo.output(), demo.output()
        assert demo.running()  # the local demo keeps serving after the failed share
    finally:
        demo.stop()
    assert not demo.running()


def test_the_demo_title_says_when_it_lists_only_some_classes():
    from studio.demo import classes_title

    assert classes_title(["cat", "dog"]) == "cat, dog"
    assert classes_title([str(i) for i in range(10)]) == "0, 1, 2, 3, 4, 5, … (10 classes)"


def test_a_restore_bundle_restores_the_whole_picture_as_try_does(module_tmp, tmp_path):
    from test_restore import restore_config, write_pairs

    data = write_pairs(module_tmp / "pairs", n=8, size=32)
    run = module_tmp / "restore_run"
    fit(restore_config(data, epochs=1, batch_size=4, image_size=16, extra={"net": "cnn"}), run)
    export_bundle(run, tmp_path / "b")
    bundle = Bundle(tmp_path / "b")
    try_model = load_checkpoint(run)
    rng = np.random.default_rng(0)
    # larger than a 16 px tile (tiled with overlap), and smaller than one on a side (padded for the traced model)
    for w, h in ((45, 37), (50, 9)):
        picture = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        before, after = bundle.predict(picture)
        expected_before, expected_after = try_model.restored(picture)
        assert after.size == before.size == (w, h)
        assert np.array_equal(np.asarray(before), np.asarray(expected_before))
        assert np.abs(np.asarray(after, np.int16) - np.asarray(expected_after, np.int16)).max() <= 1, (w, h)
