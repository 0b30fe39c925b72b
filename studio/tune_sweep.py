"""`python -m studio.tune_sweep --workspace WS RUN_ID...`: a sweep's trials under Ray Tune.

Submitted by the studio as one Ray job (studio/jobs.py) for the runs of a sweep that asked for
early stopping. Each Tune trial trains one of those runs exactly as studio.worker would (same
folder, same reports to the studio's endpoint, with that run's own token) and also tells Tune
its monitored metric after every epoch, so that ASHA can stop the weaker trials at each rung.
A trial that ASHA stops is marked `stopped`, with the reason, by this driver.
"""
import argparse
import json
import math
import os
import sys

from .remote_store import RemoteStore, ReportRefused
from .sweeps import higher_is_better


def _remote(run_id):
    tokens = json.loads(os.environ["DARKROOM_REPORT_TOKENS"])
    return RemoteStore(os.environ["DARKROOM_REPORT_URL"], tokens[run_id], run_id)


def _tune_reporter():
    from ray import tune
    from trainers.reporting import Reporter

    class TuneReport(Reporter):
        """Tells Tune each epoch's monitored metric as `score`, higher always better."""

        def start(self, info):
            self.monitor = info.get("monitor")
            self.sign = 1.0 if higher_is_better({"monitor": self.monitor, "higher_is_better":
                                                 info.get("higher_is_better")}) else -1.0

        def epoch(self, metrics):
            value = metrics.get(self.monitor)
            score = self.sign * value if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf
            tune.report({"score": score, "epoch": metrics.get("epoch")})

    return TuneReport()


def trial(config):
    """One Tune trial: train the run named by config['run_id']."""
    from .worker import run

    code = run(os.environ["DARKROOM_WORKSPACE"], config["run_id"], remote=_remote(config["run_id"]),
               extra_reporter=_tune_reporter())
    if code:
        raise RuntimeError(f"run {config['run_id']} did not complete (exit code {code}); see its log")


def _mark_callback():
    from ray.tune import Callback

    class MarkStopped(Callback):
        """A trial that ended while its run still says running was stopped by the scheduler."""

        def _mark(self, trial, status, why):
            run_id = trial.config["run_id"]
            remote = _remote(run_id)
            try:
                record = remote.get_run(run_id)
                if record and record["status"] == "running":
                    epoch = (trial.last_result or {}).get("epoch") or record.get("epoch")
                    remote.append_log(run_id, why.format(epoch=epoch))
                    remote.transition(run_id, status, error=why.format(epoch=epoch))
            except ReportRefused:
                pass  # the run ended by itself meanwhile

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._mark(trial, "stopped", "Stopped early by ASHA after epoch {epoch}: other settings did better "
                                         "by then. Resume it to train it to the end.")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._mark(trial, "failed", "Its Ray Tune trial failed after epoch {epoch}; see the sweep job's log.")

    return MarkStopped()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.tune_sweep")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--name", required=True, help="the sweep's id: Tune's experiment name")
    parser.add_argument("--epochs", type=int, required=True, help="ASHA's max_t: the trials' epochs")
    parser.add_argument("--cpus", type=float, default=1)
    parser.add_argument("--gpus", type=float, default=0)
    parser.add_argument("--early-stop", action="store_true")
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args(argv)
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    ray.init()  # inside the job: its cluster, and its runtime_env (code, DARKROOM_*) for every trial
    scheduler = None
    if args.early_stop:
        # Rungs after 1, 2, 4... epochs; at each the lower half of the trials that reached it stop.
        # max_t one past the last epoch: ASHA also stops every trial that reaches max_t, which
        # would cut a finishing run off before it writes its last checkpoint and result.
        scheduler = ASHAScheduler(time_attr="training_iteration", metric="score", mode="max",
                                  max_t=max(args.epochs, 1) + 1, grace_period=1, reduction_factor=2)
    tuner = tune.Tuner(
        tune.with_resources(trial, {"cpu": args.cpus, "gpu": args.gpus}),
        param_space={"run_id": tune.grid_search(args.runs)},
        tune_config=tune.TuneConfig(scheduler=scheduler),
        run_config=tune.RunConfig(name=args.name, storage_path=os.path.join(args.workspace, "tune"),
                                  callbacks=[_mark_callback()], verbose=0))
    tuner.fit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
