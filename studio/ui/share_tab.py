"""The Share tab: export a finished run as a bundle and serve it as a standalone demo.

The bundle goes to WORKSPACE/exports/RUN_ID; the demo is `python -m studio.demo` in its own
process on its own port (studio.demo.DemoProcess), so it cannot slow or crash the studio."""
import threading
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from studio.demo import DemoProcess, SHARE_OFFLINE
from studio.export import export_bundle
from studio.ui.context import is_shared, user_errors
from studio.ui.inspect_tab import run_list

SHARED_NO_LINK = ("This studio is itself shared over a public link: a demo of it runs on this machine only; "
                  "public links are made by the studio's owner.")
_demos: dict = {}   # run id -> DemoProcess, one per run
_lock = threading.Lock()


def exports_dir(ctx, run_id):
    return ctx.workspace.root / "exports" / ctx.workspace.run_dir(run_id).name


def start_demo(ctx, run_id, share=False, auth=None, timeout=120):
    """Export the run and launch its demo; returns (DemoProcess, message in Markdown). export_bundle
    refuses the tasks a bundle cannot hold, before any demo starts."""
    bundle = exports_dir(ctx, run_id)
    result = export_bundle(ctx.workspace.run_dir(run_id), bundle)
    stop_demo(run_id)
    demo = DemoProcess(bundle, share=share, auth=auth or None, log_path=bundle / "demo.log")
    with _lock:
        _demos[run_id] = demo
    if not demo.wait_ready(timeout):
        demo.stop()
        tail = "\n".join(demo.output().splitlines()[-5:])
        raise ValueError(f"The demo did not start. Its last lines:\n{tail}")
    lines = [f"Demo running at [{demo.url}]({demo.url}) (on this machine only).",
             f"Bundle: `exports/{bundle.name}` ({', '.join(result['files'])}); ONNX {result['onnx']}."]
    if share:
        output = demo.output()
        link = next((l.split(": ", 1)[1] for l in output.splitlines() if l.startswith("Public share link")), None)
        lines.insert(1, f"Public link: {link}" if link else SHARE_OFFLINE.format(url=demo.url))
    return demo, "\n\n".join(lines)


def stop_demo(run_id) -> bool:
    with _lock:
        demo = _demos.pop(run_id, None)
    if demo is None:
        return False
    demo.stop()
    return True


def build(ctx):
    gr.Markdown("### Share a trained model")
    first = run_list(ctx, None, ("completed",))
    run = gr.Dropdown(label="Run", choices=first["choices"], value=None, info=first["info"],
                      elem_id="share-run", allow_custom_value=True)  # _need() checks the id against the store
    with gr.Row():
        share = gr.Checkbox(label="Public share link (needs internet)", value=False, visible=not is_shared(ctx))
        user = gr.Textbox(label="Username (optional)")
        password = gr.Textbox(label="Password (optional)", type="password")
    with gr.Row():
        can = False  # until a run is chosen (the page's load chooses the newest)
        export_button = gr.Button("Export bundle only", interactive=can)
        start = gr.Button("Start demo", variant="primary", interactive=can, elem_id="share-start")
        stop = gr.Button("Stop demo", variant="stop", interactive=can)
    status = gr.Markdown(elem_id="share-status")

    def _need(run_id):
        if not run_id:
            raise gr.Error("Choose a run first.", print_exception=False)
        record = ctx.store.get_run(str(run_id))
        if record is None or record.get("status") != "completed":
            raise gr.Error(f"There is no completed run {str(run_id)[:40]!r}.", print_exception=False)

    @user_errors
    def on_export(run_id):
        _need(run_id)
        result = export_bundle(ctx.workspace.run_dir(run_id), exports_dir(ctx, run_id))
        return f"Bundle written to `exports/{Path(result['dir']).name}`: {', '.join(result['files'])}. ONNX {result['onnx']}."

    @user_errors
    def on_start(run_id, public, name, secret):
        _need(run_id)
        if public and is_shared(ctx):  # the box is hidden; a script sending True is refused too
            raise gr.Error(SHARED_NO_LINK, print_exception=False)
        if bool(name) != bool(secret):
            raise gr.Error("Give both a username and a password, or neither.", print_exception=False)
        _, message = start_demo(ctx, run_id, public, f"{name}:{secret}" if name else None)
        return message

    @user_errors
    def on_stop(run_id):
        _need(run_id)
        return "Demo stopped." if stop_demo(run_id) else "No demo was running for this run."

    run.change(lambda rid: [gr.update(interactive=bool(rid))] * 3, run, [export_button, start, stop],
               api_visibility="private", show_progress="hidden")
    export_button.click(on_export, run, status)
    start.click(on_start, [run, share, user, password], status)
    stop.click(on_stop, run, status)
    return SimpleNamespace(on_show=(lambda current: run_list(ctx, current, ("completed",)), [run], [run]))
