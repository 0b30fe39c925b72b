"""Darkroom's studio: `python app.py [--workspace DIR] [--host 127.0.0.1] [--port N] [--share]
[--auth USER:PASSWORD] [--max-runs N] [--max-upload SIZE] [--runner local|ray://HOST:PORT]`, then open the printed address in a browser.

Runs train in their own processes and keep going when the studio stops; started again on the
same workspace, the studio finds them (see studio/jobs.py). With --share the studio is open to
whoever has the link, so it reads no folder of this machine on a visitor's request (the Data tab
takes uploads only) and every upload has a size limit."""
import argparse
import os
import re
import socket
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MAX_UPLOAD = "2gb"          # dataset archives are uploaded through the Data tab
SHARE_CHECK_S = 3.0         # how long --share waits to learn whether the internet is there


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python app.py", description="Darkroom: a browser studio for training image models.")
    p.add_argument("--workspace", default=None,
                   help="folder for datasets, runs and the run store (default: $DARKROOM_WORKSPACE or ~/.darkroom)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: 7860 or the next free one)")
    p.add_argument("--share", action="store_true", help="also ask Gradio for a temporary public link (needs the internet)")
    p.add_argument("--auth", default=None, metavar="USER:PASSWORD", help="ask for this user name and password")
    p.add_argument("--max-runs", type=int, default=None, metavar="N",
                   help="runs that train at the same time (default: one per GPU, one on the CPU)")
    p.add_argument("--max-upload", default=MAX_UPLOAD, metavar="SIZE",
                   help=f"largest file a browser may upload, e.g. 500mb (default {MAX_UPLOAD})")
    p.add_argument("--runner", default="local", metavar="local|ray://HOST:PORT",
                   help="where runs train: local processes (default), or jobs on a Ray cluster given by its Ray "
                        "Client address ray://HOST:10001, its dashboard http://HOST:8265 or its address HOST:6379 "
                        "(README: Train on a Ray cluster)")
    p.add_argument("--run-gpus", type=float, default=0, metavar="N",
                   help="with a Ray runner: GPUs each run asks of the cluster (default 0: CPU)")
    p.add_argument("--report-address", default=None, metavar="HOST[:PORT]",
                   help="with a Ray runner: where the cluster's workers reach this studio (default: this "
                        "machine's address towards the cluster, any free port)")
    args = p.parse_args(argv)
    if args.auth is not None and (":" not in args.auth or not args.auth.split(":", 1)[0] or not args.auth.split(":", 1)[1]):
        p.error("--auth takes USER:PASSWORD, both non-empty, e.g. --auth ada:secret")
    if args.report_address is not None and not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?", args.report_address):
        p.error(f"--report-address takes HOST or HOST:PORT, not {args.report_address!r}")
    if args.max_runs is not None and args.max_runs < 1:
        p.error("--max-runs must be 1 or more")
    if not re.fullmatch(r"[1-9][0-9]*(b|kb|mb|gb|tb)", args.max_upload.strip().lower()):
        p.error(f"--max-upload takes a size such as 500mb or 2gb, not {args.max_upload!r}")
    args.max_upload = args.max_upload.strip().lower()  # Gradio's own notation
    return args


def make_runner(args):
    """None for local runs, else a RayRunner for --runner's address (Ray is imported only then)."""
    from studio.ray_runner import RayRunner, is_local

    if is_local(args.runner):
        return None
    host, _, port = (args.report_address or "").partition(":")
    return RayRunner(args.runner, run_gpus=args.run_gpus, report_host=host or None, report_port=int(port or 0))


def open_context(args):
    """The StudioContext for these options; a shared studio is marked so the tabs can refuse what
    a public visitor must not do (read folders of this machine)."""
    from studio.ui.context import StudioContext

    return StudioContext.open(args.workspace, slots=args.max_runs, shared=args.share, runner=make_runner(args))


def launch_options(args, ctx, share: bool) -> dict:
    """What demo.launch gets: where to serve, what files may be served, the upload limit."""
    from studio.datasets.samples import ASSETS
    from studio.login_guard import LoginGuard
    from studio.served import private_folders
    from studio.ui.app import CSS

    return dict(
        server_name=args.host, server_port=args.port, share=share, css=CSS,
        # A callable: failures are delayed and, repeated, lock the login (studio/login_guard.py).
        auth=LoginGuard(*args.auth.split(":", 1)).login if args.auth else None,
        auth_message="Darkroom studio: after several wrong passwords the login is locked for a while.",
        # Files are served from the served folder (links to what the page shows) and the bundled
        # assets, nothing else: the store, runs (checkpoints, configs, logs), datasets, uploads
        # and the import scratch are blocked, even for outputs (studio/served.py says why).
        allowed_paths=[str(ctx.workspace.served_dir), str(ASSETS)],
        blocked_paths=private_folders(ctx.workspace),
        max_file_size=args.max_upload, prevent_thread_lock=True, show_error=True, quiet=True,
    )


def share_server_reachable(timeout: float = SHARE_CHECK_S) -> bool:
    """Can this machine reach Gradio's share service? Asked with a short timeout so that an
    offline studio does not wait half a minute for Gradio to give up."""
    from gradio import networking

    host = networking.GRADIO_API_SERVER.split("://", 1)[-1].split("/", 1)[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def no_share_message(url: str) -> str:
    return ("could not create a public share link: no internet connection (or Gradio's share service "
            f"cannot be reached); the studio is still serving locally at {url}")


def warm_up_trainers():
    """Import torch and the trainers while the person looks at the page, so that the first
    Start does not wait for them."""
    try:
        import trainers  # noqa: F401
    except Exception as e:  # the first submit will report it properly
        print(f"darkroom: could not load the trainers yet: {e}", file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from studio.datasets.samples import install_samples

    from studio.ray_runner import ClusterError

    try:
        ctx = open_context(args)
    except ClusterError as e:
        print(f"darkroom: {e}", file=sys.stderr)
        return 2
    installed = install_samples(ctx.workspace)
    if installed:
        print(f"darkroom: installed the sample datasets {', '.join(installed)} into {ctx.workspace.datasets_dir}")
    from studio.ui import build_app

    demo = build_app(ctx)
    # Only after the build: two threads importing torchvision at once meet its package's import
    # cycle half done ("cannot import name 'InterpolationMode' from partially initialized module").
    threading.Thread(target=warm_up_trainers, daemon=True, name="warm-up").start()
    share = args.share and share_server_reachable()
    ctx.jobs.start_background()
    try:
        demo.queue(default_concurrency_limit=8)
        demo.launch(**launch_options(args, ctx, share))
        if args.share and not demo.share_url:
            print("darkroom: " + no_share_message(demo.local_url) + ".", flush=True)
        print(f"darkroom: serving {ctx.workspace.root} at {demo.local_url}", flush=True)
        demo.block_thread()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        ctx.jobs.shutdown()  # runs keep going; the next studio finds them
        print("darkroom: studio stopped; runs in progress keep training.", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.exit(main())
