"""The studio's reporting endpoint for runs on a Ray cluster.

A worker on another machine must not write the run store itself: the store is a SQLite
database in write-ahead-log mode, and SQLite's locks and WAL index need one host's shared
memory; over NFS they are not safe (docs/ARCHITECTURE.md says more). So a cluster worker
sends each store call here, and the studio makes it on its own disk.

Each attempt of a run gets a fresh random token (the scheduler makes it when it submits the
job). A call must carry the token of its run's current attempt: a worker that lost its run
(marked interrupted and resumed elsewhere) is refused and ends itself; whoever reaches the
port without a token can do nothing. A call may only touch its own run, only the calls a
worker needs, and only the fields a worker writes.
"""
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 1 << 20   # a burst of batch losses is a few kB; anything larger is not a worker
WORKER_FIELDS = {"pid", "epochs", "batches", "monitor", "higher_is_better", "device", "best_metric", "node"}
ENDING_FIELDS = {"result", "best_metric", "error"}
WORKER_ENDS = {"completed", "failed", "stopped"}


class Refused(ValueError):
    """A call the endpoint does not make; the message says why."""


def _check_fields(fields: dict, allowed: set) -> dict:
    unknown = set(fields) - allowed
    if unknown:
        raise Refused(f"a worker may not set {', '.join(sorted(unknown))}")
    return fields


def call_store(store, workspace, run_id: str, method: str, args: list, kwargs: dict):
    """Make one worker's store call for `run_id`, after checking that a worker may."""
    if method in ("get_run", "heartbeat", "stop_requested", "request_stop"):
        return getattr(store, method)(run_id)
    if method == "update_run":
        return store.update_run(run_id, **_check_fields(kwargs, WORKER_FIELDS))
    if method == "transition":
        status = args[0] if args else None
        if status not in WORKER_ENDS:
            raise Refused(f"a worker may not move its run to {status!r}")
        moved = store.transition(run_id, status, **_check_fields(kwargs, ENDING_FIELDS))
        if moved:
            store.set_report_token(run_id, None)  # the attempt is over: nothing more comes from it
        return moved
    if method == "append_log":
        return store.append_log(run_id, str(args[0]))
    if method == "add_epoch_metrics":
        if not isinstance(args[0], dict):
            raise Refused("metrics must be an object")
        return store.add_epoch_metrics(run_id, args[0])
    if method == "add_batch_losses":
        return store.add_batch_losses(run_id, [tuple(r) for r in args[0]], eta_s=kwargs.get("eta_s"))
    if method == "add_sample":
        epoch, path = args
        # The studio serves sample grids to the browser: only a file in this run's folder.
        if not Path(path).resolve().is_relative_to(workspace.run_dir(run_id).resolve()):
            raise Refused("a sample must lie in its run's folder")
        return store.add_sample(run_id, int(epoch), path)
    raise Refused(f"unknown call {method!r}")


class ReportServer:
    """A small HTTP server in a thread: POST /report {run, token, method, args, kwargs}."""

    def __init__(self, store, workspace, host: str = "127.0.0.1", port: int = 0, advertise: str | None = None):
        self.store, self.workspace = store, workspace
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                status, body = server.handle(self.path, self.headers, self.rfile)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # one line per batch burst would drown the studio's log
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host = advertise or host
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="report-server")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/report"

    def handle(self, path, headers, rfile):
        if path != "/report":
            return 404, {"error": "not found"}
        length = int(headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return 413, {"error": "body too large or empty"}
        try:
            call = json.loads(rfile.read(length))
            run_id, token, method = str(call["run"]), str(call["token"]), str(call["method"])
            args, kwargs = list(call.get("args") or []), dict(call.get("kwargs") or {})
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "not a report call"}
        expected = self.store.report_token(run_id)
        if not expected or not hmac.compare_digest(expected, token):
            return 403, {"error": "this run's attempt is over, or the token is wrong"}
        try:
            return 200, {"value": call_store(self.store, self.workspace, run_id, method, args, kwargs)}
        except (Refused, ValueError, TypeError, IndexError) as e:
            return 400, {"error": str(e)}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
