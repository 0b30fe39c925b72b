"""The studio's Blocks app: six tabs, one module each, and the documented API."""
import gradio as gr

from . import api, data_tab, inspect_tab, runs_tab, share_tab, train_tab, try_tab

TITLE = "Darkroom"
CSS = ".darkroom-run progress { height: 10px; vertical-align: middle; }"


def build_app(ctx) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        api.register(ctx)  # first, so that the documented api_names are never taken by a tab's handler
        gr.Markdown(f"# {TITLE}\nBuild a dataset, train a model in the background, watch it learn. "
                    f"Workspace: `{ctx.workspace.root}`")
        with gr.Tabs():
            with gr.Tab("Data"):
                data_tab.build(ctx)
            with gr.Tab("Train", id="train"):
                train = train_tab.build(ctx)
            with gr.Tab("Runs", id="runs"):
                runs_tab.build(ctx)
            with gr.Tab("Inspect"):
                inspect_tab.build(ctx)
            with gr.Tab("Try"):
                try_tab.build(ctx)
            with gr.Tab("Share"):
                share_tab.build(ctx)
        fn, inputs, outputs = train.on_load
        demo.load(fn, inputs, outputs, api_visibility="private", show_progress="hidden")
    return demo
