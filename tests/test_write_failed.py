"""A file a run cannot write (most often a full disk): one sentence that says so, and the file
written before it stays whole. The failure is real: the writing process runs under
RLIMIT_FSIZE, so the kernel refuses every byte past the limit, as it does on a full disk."""

import subprocess
import sys
import textwrap

import torch

from conftest import ROOT, tiny_config
from studio.jobs import Jobs
from studio.store import Store
from studio.workspace import Workspace
from trainers.callbacks import read_checkpoint, write_checkpoint

LIMITED = textwrap.dedent("""\
    import resource, signal, sys
    sys.path.insert(0, {root!r})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails (EFBIG), nothing is killed
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    """)


def run_limited(code: str, limit_bytes: int, env=None) -> subprocess.CompletedProcess:
    script = LIMITED.format(root=str(ROOT), limit=limit_bytes) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT)
    )


OVERWRITE = """
    import torch
    from trainers import atomic
    from trainers.callbacks import write_checkpoint
    from trainers.errors import WriteFailed
    atomic.FULL_BELOW_MB = {full_below}
    try:
        write_checkpoint({{"model": {{"w": torch.ones(2**20)}}, "epoch": 2}}, {path!r})  # 4 MB
    except WriteFailed as error:
        print(error)
    else:
        print("written")
    """


def test_a_checkpoint_past_the_limit_is_refused_in_a_sentence_and_the_previous_one_kept(tmp_path):
    last = tmp_path / "checkpoints" / "last.pt"
    write_checkpoint({"model": {"w": torch.zeros(8)}, "epoch": 1}, last)
    done = run_limited(OVERWRITE.format(path=str(last), full_below=64), 2**20)
    message = done.stdout.strip()
    assert done.returncode == 0, done.stderr
    assert message.startswith("Could not write last.pt (") and "The previous last.pt is kept." in message, message
    assert str(tmp_path) not in message  # the file's name, never the host's path
    kept = read_checkpoint(last)
    assert kept["epoch"] == 1 and torch.equal(kept["model"]["w"], torch.zeros(8))
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]  # no temporary file left behind


def test_with_little_room_left_the_sentence_says_the_disk_is_full_and_what_to_do(tmp_path):
    last = tmp_path / "last.pt"
    # The threshold raised above this disk's real free space: the branch a full disk takes.
    done = run_limited(OVERWRITE.format(path=str(last), full_below=2**40), 2**20)
    message = done.stdout.strip()
    assert message.startswith("Could not write last.pt: the disk is full ("), (message, done.stderr)
    assert "MB free)" in message and "Free disk" in message and "resume the run" in message
    assert not last.exists() and list(tmp_path.iterdir()) == []


def test_a_run_whose_worker_cannot_write_fails_with_the_sentence_in_its_record(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from conftest import write_colour_classes

    ws = Workspace.open(tmp_path / "workspace")
    write_colour_classes(ws.dataset_dir("colours"), per_class=8)
    store = Store(ws.store_dir)
    try:
        run_id = Jobs(ws, store, slots=1).submit(tiny_config("colours", epochs=1))
        # The real worker, run as the scheduler runs it but under the limit: a ResNet-18's
        # checkpoint (45 MB of weights) cannot be written, the log and the metrics can.
        done = run_limited(
            f"""
            from studio.worker import main
            sys.exit(main(["--workspace", {str(ws.root)!r}, {run_id!r}]))
            """,
            8 * 2**20,
        )
        record = store.get_run(run_id)
        assert record["status"] == "failed", (record, done.stderr[-2000:])
        assert record["error"].startswith("Could not write last.pt ("), record["error"]
        assert "unexpected pos" not in record["error"] and "inline_container" not in record["error"]
        assert "Could not write last.pt" in (ws.run_dir(run_id) / "log.txt").read_text()
    finally:
        store.close()
