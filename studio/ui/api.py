"""The studio's documented API (docs/API.md): the main actions as named endpoints, for scripts
that drive the studio with gradio_client. Each is a plain typed function registered with
gr.api, so its api_name is stable whatever the tabs look like. A refusal comes back as a
gr.Error carrying its sentence, never a traceback."""
import json

import gradio as gr

from studio.datasets.errors import DatasetError
from studio.datasets.manifest import dataset_names, read_manifest

from .context import user_errors

# The studio's public endpoints, every one documented in docs/API.md, and where each is wired:
# "api" ones are registered by register() below; the others answer with pictures, charts or
# galleries that their tab's components render, so the tab's listener carries the name.
# apply_policy() makes every other listener private, whatever its tab says.
ENDPOINTS = {
    "list_datasets": "api", "train_defaults": "api", "start_run": "api", "run_status": "api", "stop_run": "api",
    "resume_run": "api", "list_runs": "api", "start_sweep": "api", "sweep_status": "api",
    "import_folder": "data_tab", "crappify": "data_tab", "import_masks": "data_tab",
    "preview_augmentations": "data_tab", "samples_gif": "runs_tab", "compare_samples": "runs_tab",
    "try_model": "try_tab", "pin_epoch": "epochs_panel",
}


def apply_policy(blocks) -> None:
    """One API policy: the endpoints of ENDPOINTS are public, each exactly once; every other
    listener is private (Gradio makes a listener without api_name public under its function's
    name). Raises when a documented endpoint is missing or doubled, so a renamed one fails at
    start, not in a user's script."""
    public = []
    for fn in blocks.fns.values():
        if fn.api_name in ENDPOINTS and fn.api_visibility == "public":
            public.append(fn.api_name)
        else:
            fn.api_visibility = "private"
    missing = sorted(set(ENDPOINTS) - set(public))
    doubled = sorted({name for name in public if public.count(name) > 1})
    if missing or doubled:
        raise RuntimeError(f"API endpoints missing: {missing}; registered twice: {doubled}.")


MAX_CONFIG_CHARS = 50_000  # a config is a few hundred characters; a visitor's megabytes are refused unread
SUMMARY_FIELDS = ("id", "name", "kind", "status", "task", "dataset", "epoch", "epochs", "best_metric",
                  "monitor", "device", "created", "started", "ended", "error")


def _record(store, run_id):
    record = store.get_run(str(run_id or "").strip())
    if record is None:
        raise gr.Error(f"There is no run {run_id!r}; list_runs shows the runs there are.", print_exception=False)
    return record


def status_of(store, record) -> dict:
    metrics = store.epoch_metrics(record["id"])
    return {
        "id": record["id"], "name": record["name"], "kind": record["kind"], "status": record["status"],
        "epoch": record.get("epoch") or 0, "epochs": record.get("epochs"),
        "batch": record.get("batch") or 0, "batches": record.get("batches"), "eta_s": record.get("eta_s"),
        "metrics": metrics[-1] if metrics else {}, "best_metric": record.get("best_metric"),
        "monitor": record.get("monitor"), "device": record.get("device"), "error": record.get("error"),
        "result": record.get("result"),
    }


def _json_object(text, what: str, example: str = "") -> dict:
    """`text` parsed as a JSON object, or one sentence saying what is wrong (`example` ends it)."""
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as e:
        raise gr.Error(f"The {what} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.",
                       print_exception=False) from None
    if not isinstance(value, dict):
        raise gr.Error(f"The {what} must be a JSON object{example}.", print_exception=False)
    return value


def register(ctx):
    """Call inside the Blocks context."""
    ws, store, jobs = ctx.workspace, ctx.store, ctx.jobs

    @user_errors
    def list_datasets() -> list[dict]:
        """The workspace's datasets: name, kind (classify, segment, restore, images), classes or codes, counts."""
        out = []
        for name in dataset_names(ws):
            try:
                manifest = read_manifest(ws.dataset_dir(name))
            except DatasetError:
                continue
            entry = {"name": name, "kind": manifest.get("kind"), "counts": manifest.get("counts", {})}
            for key in ("classes", "codes"):
                if key in manifest:
                    entry[key] = manifest[key]
            out.append(entry)
        return out

    @user_errors
    def start_run(config: str, name: str = "", processes: int = 1) -> str:
        """Queue a training run. `config` is a JSON object of RunConfig settings; "data" may be a
        dataset name of the workspace; `processes` > 1 trains it with DistributedDataParallel on
        that many processes placed by a Ray cluster. Returns the new run's id."""
        if isinstance(config, str) and len(config) > MAX_CONFIG_CHARS:
            raise gr.Error(f"The config is {len(config):,} characters long; a run's settings take at most "
                           f"{MAX_CONFIG_CHARS:,}.", print_exception=False)
        settings = _json_object(config, "config", ', such as {"task": "classify", "data": "digits"}')
        return jobs.submit(settings, name=name or None, processes=int(processes or 1))

    @user_errors
    def train_defaults(dataset: str) -> dict:
        """The config the Train tab fills in for a dataset of the workspace before anyone changes a
        field (task from its kind, sizes from its pictures, time budget); start_run takes it as is."""
        from .train_tab import form_defaults

        if dataset not in dataset_names(ws):
            raise gr.Error(f"There is no dataset named {dataset!r}; list_datasets shows the ones there are.",
                           print_exception=False)
        return form_defaults(ws, dataset)

    @user_errors
    def run_status(run_id: str) -> dict:
        """A run's status, epoch and epochs, batch, ETA, last epoch's metrics, best metric, device and error."""
        return status_of(store, _record(store, run_id))

    @user_errors
    def stop_run(run_id: str) -> dict:
        """Ask a run to stop (a queued one stops at once; a running one after its current batch,
        keeping its last checkpoint). Returns its status right after the request."""
        jobs.stop(_record(store, run_id)["id"])
        return status_of(store, _record(store, run_id))

    @user_errors
    def resume_run(run_id: str) -> dict:
        """Queue an interrupted, stopped or failed run again, to continue from its last checkpoint."""
        jobs.resume(_record(store, run_id)["id"])
        return status_of(store, _record(store, run_id))

    @user_errors
    def list_runs() -> list[dict]:
        """Every run, newest first, with its status, task, dataset, progress and best metric."""
        return [{k: r.get(k) for k in SUMMARY_FIELDS} for r in store.list_runs()]

    @user_errors
    def start_sweep(config: str, space: str, n: int = 4, mode: str = "grid", seed: int = 0,
                    early_stop: bool = False, name: str = "") -> str:
        """Queue "try N settings" of a config: `space` is a JSON object giving the values to try for
        lr, image_size and/or batch_size, e.g. {"lr": [0.001, 0.01], "image_size": [32, 64]}; mode
        grid or random (seeded); early_stop trains the trials under Ray Tune's ASHA on a cluster.
        Returns the sweep's id."""
        settings, values = _json_object(config, "config"), _json_object(space, "space")
        return jobs.submit_sweep(settings, values, int(n), mode=mode, seed=int(seed),
                                 early_stop=bool(early_stop), name=name or None)

    @user_errors
    def sweep_status(sweep_id: str) -> dict:
        """A sweep's trials (settings, status, best metric), whether all have ended, and its best run."""
        from studio.sweeps import summary

        found = summary(store.list_runs(), str(sweep_id or "").strip())
        if found is None:
            raise gr.Error(f"There is no sweep {sweep_id!r}.", print_exception=False)
        return found

    for fn in (list_datasets, train_defaults, start_run, run_status, stop_run, resume_run, list_runs, start_sweep,
               sweep_status):
        # No concurrency limit: a status call must not wait behind another client's call.
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
