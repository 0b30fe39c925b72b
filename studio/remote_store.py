"""The worker's side of studio/report_server.py: the Store calls a worker makes, sent over HTTP.

A worker on a Ray cluster gets the endpoint's address and its attempt's token in its
environment (DARKROOM_REPORT_URL, DARKROOM_REPORT_TOKEN) and uses this object where a local
worker opens the store. A studio that is briefly unreachable (restarting, a busy disk) is
waited for; a refusal means the run has moved on without this worker, which then ends.
"""
import json
import os
import time
import urllib.error
import urllib.request

PATIENCE_S = 60.0   # how long a call waits for an unreachable studio before it gives up
TIMEOUT_S = 10.0


class ReportRefused(RuntimeError):
    """The studio refused a call: this worker's attempt of the run is over."""


class StudioUnreachable(RuntimeError):
    pass


class RemoteStore:
    def __init__(self, url: str, token: str, run_id: str, patience: float = PATIENCE_S):
        self.url, self.token, self.run_id, self.patience = url, token, run_id, patience

    @classmethod
    def from_env(cls, run_id: str):
        url = os.environ.get("DARKROOM_REPORT_URL")
        return cls(url, os.environ.get("DARKROOM_REPORT_TOKEN", ""), run_id) if url else None

    def _call(self, method: str, run_id: str, *args, **kwargs):
        if run_id != self.run_id:
            raise ReportRefused(f"this worker reports for run {self.run_id}, not {run_id}")
        body = json.dumps({"run": run_id, "token": self.token, "method": method,
                           "args": list(args), "kwargs": kwargs}).encode()
        deadline = time.monotonic() + self.patience
        delay = 0.5
        while True:
            request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                    return json.loads(response.read())["value"]
            except urllib.error.HTTPError as e:
                detail = _error_text(e)
                if e.code in (400, 403):
                    raise ReportRefused(f"the studio refused {method}: {detail}") from None
                problem = f"HTTP {e.code}: {detail}"
            except (urllib.error.URLError, OSError) as e:
                problem = str(getattr(e, "reason", e))
            if time.monotonic() >= deadline:
                raise StudioUnreachable(f"the studio at {self.url} did not answer for {self.patience:.0f} s ({problem})")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def __getattr__(self, method):
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda run_id, *args, **kwargs: self._call(method, run_id, *args, **kwargs)

    def close(self) -> None:
        pass


def _error_text(e) -> str:
    try:
        return json.loads(e.read()).get("error", "")
    except Exception:
        return e.reason or ""
