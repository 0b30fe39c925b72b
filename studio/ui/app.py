"""The studio's Blocks app: a first page and six tabs, one module each, and the documented API."""
import gradio as gr

from . import api, data_tab, inspect_tab, runs_tab, share_tab, start_tab, train_tab, try_tab

TITLE = "Darkroom"
CSS = ".darkroom-run progress { height: 10px; vertical-align: middle; }"


def build_app(ctx) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        api.register(ctx)  # first, so that the documented api_names are never taken by a tab's handler
        gr.Markdown(f"# {TITLE}\nBuild a dataset, train a model in the background, watch it learn. "
                    f"Workspace: `{ctx.workspace.root}`")
        with gr.Tabs(selected="start") as tabs:
            with gr.Tab("Start here", id="start") as start_page:
                start = start_tab.build(ctx)
            with gr.Tab("Data", id="data"):
                data_tab.build(ctx)
            with gr.Tab("Train", id="train") as train_page:
                train = train_tab.build(ctx)
            with gr.Tab("Runs", id="runs") as runs_page:
                runs = runs_tab.build(ctx)
            with gr.Tab("Inspect", id="inspect") as inspect_page:
                inspect = inspect_tab.build(ctx)
            with gr.Tab("Try", id="try") as try_page:
                try_ = try_tab.build(ctx)
            with gr.Tab("Share", id="share") as share_page:
                share = share_tab.build(ctx)
        start_tab.wire(start, tabs, train)
        runs_tab.wire_clone(runs, tabs, train)
        # Choices are fixed when the page is built: every list is rebuilt when its tab is shown,
        # and all of them when the page loads, so runs and datasets made since are always there.
        for page, view in [(start_page, start), (train_page, train), (runs_page, runs), (inspect_page, inspect),
                           (try_page, try_), (share_page, share)]:
            fn, inputs, outputs = view.on_show
            page.select(fn, inputs, outputs, api_visibility="private", show_progress="hidden")
            if view is not train:  # the Train tab's load refreshes its list itself
                demo.load(fn, inputs, outputs, api_visibility="private", show_progress="hidden")
        fn, inputs, outputs = train.on_load
        demo.load(fn, inputs, outputs, api_visibility="private", show_progress="hidden")
    api.apply_policy(demo)  # the documented endpoints public, every other listener private
    return demo
