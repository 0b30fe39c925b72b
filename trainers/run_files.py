"""A Reporter that writes a run's record to its folder: metrics.jsonl and log.txt."""
import json
import time
from pathlib import Path

from .reporting import Reporter


class RunFiles(Reporter):
    def __init__(self, out_dir):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out / "metrics.jsonl"
        self.log_path = self.out / "log.txt"

    def keep_epochs_up_to(self, epoch: int) -> None:
        """On resume: drop metric lines of epochs that will be run again."""
        kept = [m for m in read_metrics(self.out) if m.get("epoch", 0) <= epoch]
        self.metrics_path.write_text("".join(json.dumps(m) + "\n" for m in kept), encoding="utf-8")

    def epoch(self, metrics):
        with self.metrics_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")

    def log(self, line):
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")

    def status(self, status, detail=""):
        self.log(f"status: {status}" + (f" ({detail})" if detail else ""))


def read_metrics(out_dir) -> list:
    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows
