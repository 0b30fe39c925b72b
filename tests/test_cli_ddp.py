"""The CLI end to end, alone and under torchrun with two CPU processes (gloo)."""
import json
import subprocess
import sys

from conftest import ROOT, tiny_config


def run(args, tmp_path, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_cli_trains_and_resumes(tmp_path, colour_data):
    config = tmp_path / "c.json"
    config.write_text(json.dumps(tiny_config(colour_data, epochs=1)))
    done = run(["-m", "trainers", str(config), "--out", str(tmp_path / "out"), "--device", "cpu"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "completed: 1 epochs" in done.stdout
    again = run(["-m", "trainers", str(config), "--out", str(tmp_path / "out"), "--resume"], tmp_path)
    assert again.returncode == 0, again.stderr  # nothing left to do: resumes and completes at once
    assert len((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()) == 1


def test_torchrun_two_processes_write_one_metrics_file(tmp_path, colour_data):
    config = tmp_path / "c.json"
    config.write_text(json.dumps(tiny_config(colour_data, epochs=2, batch_size=4)))
    done = run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "trainers", str(config), "--out", str(tmp_path / "ddp"), "--device", "cpu"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(l) for l in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # rank 1 wrote nothing
    assert done.stdout.count("completed:") == 1
    assert (tmp_path / "ddp" / "checkpoints" / "last.pt").is_file()
