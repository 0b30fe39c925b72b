"""Sweeps: "try N settings" of learning rate, image size and batch size around one config.

A sweep is a group of ordinary runs: each trial is a run with its own record, folder and
checkpoints, marked with `sweep` = {id, name, trial, of, params, early_stop}. Locally the trials
simply wait in the queue like any run. On a Ray cluster with early stopping they are trained by
one Ray Tune job (studio/tune_sweep.py) whose ASHA scheduler stops the weaker ones after each
rung; each trial still reports into its own run record. Nothing else is stored: a sweep's runs
are found by their `sweep.id`, and its best run is worked out from their best metrics.
"""
import itertools
import math
import random
import secrets
import time

SWEPT = ("lr", "image_size", "batch_size")
MAX_TRIALS = 64
ENDED = ("completed", "failed", "stopped", "interrupted")


class SweepError(ValueError):
    """A sweep that cannot be made as asked; the message says why."""


def parse_values(text, key: str) -> list:
    """'1e-3, 3e-3' -> [0.001, 0.003]: the values one setting may take (numbers, comma separated)."""
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [t for t in str(text or "").replace(";", ",").split(",") if t.strip()]
    values = []
    for item in items:
        try:
            value = float(item) if key == "lr" else int(float(item))
        except (TypeError, ValueError):
            raise SweepError(f"{item!r} is not a number: give {key} values separated by commas.") from None
        if value <= 0 or (key != "lr" and value != float(item)):
            raise SweepError(f"{item!r} is not a valid {key}: use positive {'numbers' if key == 'lr' else 'whole numbers'}.")
        if value not in values:
            values.append(value)
    return values


def settings(space: dict, n: int, mode: str = "grid", seed: int = 0) -> list:
    """N settings, each a dict over the swept keys that `space` gives values for.

    grid: the combinations in order (all of them when n is larger, fewer if there are fewer).
    random: seeded, distinct draws; the learning rate log-uniformly between the smallest and
    largest value given (a single value stays fixed), sizes and batch sizes from their lists."""
    space = {k: parse_values(v, k) for k, v in (space or {}).items() if k in SWEPT}
    space = {k: v for k, v in space.items() if v}
    if not space:
        raise SweepError("Give at least one value to try for the learning rate, image size or batch size.")
    if not 1 <= int(n) <= MAX_TRIALS:
        raise SweepError(f"A sweep tries between 1 and {MAX_TRIALS} settings.")
    n = int(n)
    keys = list(space)
    if mode == "grid":
        return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))][:n]
    if mode != "random":
        raise SweepError(f"Unknown sweep mode {mode!r}: use grid or random.")
    rng = random.Random(int(seed))
    out, tries = [], 0
    while len(out) < n and tries < n * 50:
        tries += 1
        point = {}
        for key in keys:
            values = space[key]
            if key == "lr" and len(values) > 1:
                lo, hi = math.log10(min(values)), math.log10(max(values))
                point[key] = float(f"{10 ** rng.uniform(lo, hi):.3g}")
            else:
                point[key] = rng.choice(values)
        if point not in out:
            out.append(point)
    return out


def new_sweep_id() -> str:
    return time.strftime("sweep-%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def label(params: dict) -> str:
    parts = []
    if "lr" in params:
        parts.append(f"lr {params['lr']:.3g}")
    if "image_size" in params:
        parts.append(f"{params['image_size']} px")
    if "batch_size" in params:
        parts.append(f"batch {params['batch_size']}")
    return ", ".join(parts)


def higher_is_better(record: dict) -> bool:
    if isinstance(record.get("higher_is_better"), bool):
        return record["higher_is_better"]
    name = (record.get("monitor") or "").lower()
    return not ("loss" in name or "error" in name)


def sweep_runs(records, sweep_id: str) -> list:
    """The sweep's runs in trial order."""
    runs = [r for r in records if (r.get("sweep") or {}).get("id") == sweep_id]
    return sorted(runs, key=lambda r: r["sweep"].get("trial", 0))


def best_run(runs) -> dict | None:
    """The trial with the best best_metric (higher or lower as its monitor says), among those
    that trained at least an epoch; None while none has."""
    scored = [r for r in runs if isinstance(r.get("best_metric"), (int, float))]
    if not scored:
        return None
    return max(scored, key=lambda r: r["best_metric"] if higher_is_better(r) else -r["best_metric"])


def sweeps(records) -> list:
    """[{id, name, runs, ended, best}] for every sweep, newest first."""
    ids = []
    for record in records:
        sweep = record.get("sweep") or {}
        if sweep.get("id") and sweep["id"] not in ids:
            ids.append(sweep["id"])
    out = []
    for sweep_id in ids:
        runs = sweep_runs(records, sweep_id)
        best = best_run(runs)
        out.append({"id": sweep_id, "name": runs[0]["sweep"].get("name") or sweep_id, "runs": runs,
                    "ended": all(r["status"] in ENDED for r in runs), "best": best["id"] if best else None})
    return out


def summary(records, sweep_id: str) -> dict | None:
    """What the API's sweep_status returns: the trials with their settings and outcome, and the best."""
    found = next((s for s in sweeps(records) if s["id"] == sweep_id), None)
    if found is None:
        return None
    trials = [{"id": r["id"], "params": r["sweep"].get("params", {}), "status": r["status"],
               "epoch": r.get("epoch") or 0, "epochs": r.get("epochs"), "best_metric": r.get("best_metric"),
               "monitor": r.get("monitor"), "error": r.get("error"), "best": r["id"] == found["best"]}
              for r in found["runs"]]
    # The best is only marked once every trial has ended: until then it is the best so far.
    return {"id": sweep_id, "name": found["name"], "ended": found["ended"], "best": found["best"],
            "best_final": found["ended"], "trials": trials}
