"""The first page, "Start here": what a newcomer needs before anything else.

The bundled samples, each with a one-click "Train on ..." that opens the Train tab filled in for
it; every dataset of the workspace as a mosaic with its kind, picture count and size (a click
opens Train with it); and the run in progress, if any, with a way to watch it. Lists are rebuilt
whenever the page loads or this tab is shown (see app.py), so nothing here is frozen at start-up."""
import base64
import html
import io
from types import SimpleNamespace

import gradio as gr

from studio.datasets.overview import dataset_cards
from studio.run_disk import human_size
from studio.datasets.samples import SAMPLES

from .train_tab import ACTIVE, clock, task_for_kind

TICK_S = 3.0
STEPS = ("**1.** Pick a dataset: a bundled sample below, or your own pictures (the **Data** tab builds a dataset "
         "from a folder or a zip).  \n**2.** Press **Start** in **Train** and watch the loss fall; the run keeps "
         "going if you close the page.  \n**3.** Use the model in **Try**, look inside it in **Inspect**, "
         "give it to others in **Share**.")


def card_caption(card) -> str:
    task = task_for_kind(card["kind"])
    return (f"{card['name']} · {card['kind']} · {card['pictures']:,} pictures · {human_size(card['bytes'])}"
            + (f" → {task}" if task and task != card["kind"] else ""))


def card_html(card) -> str:
    """A sample's mosaic and caption as plain HTML (an <img> with alt text: no unnamed controls)."""
    buffer = io.BytesIO()
    card["mosaic"].save(buffer, format="PNG")
    source = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = html.escape(card_caption(card))
    return (f"<figure style='margin:0;text-align:center'><img src='{source}' alt='pictures of {html.escape(card['name'])}'"
            f" width='128' height='128' style='image-rendering:pixelated'><figcaption>{caption}</figcaption></figure>")


def active_runs_html(records) -> str:
    """One line per queued or running training run, or a sentence saying there is none."""
    active = [r for r in records if r["kind"] == "train" and r["status"] in ACTIVE]
    if not active:
        return "<p>No run in progress.</p>"
    e = html.escape
    lines = []
    for r in active:
        where = f"epoch {r.get('epoch') or 0}/{r['epochs']}" if r.get("epochs") else ""
        if r["status"] == "running" and r.get("eta_s") is not None:
            where += f", about {clock(r['eta_s'])} left"
        lines.append(f"<b>{e(r['name'])}</b> ({e(str(r.get('task') or ''))} · {e(str(r.get('dataset') or ''))}): "
                     f"<b data-status='{e(r['status'])}'>{e(r['status'])}</b>" + (f", {e(where)}" if where else ""))
    return "<p>In progress:<br>" + "<br>".join(lines) + "</p>"


def build(ctx):
    ws, store = ctx.workspace, ctx.store
    cards = {c["name"]: c for c in dataset_cards(ws)}
    samples = [name for name in SAMPLES if name in cards]

    gr.Markdown("## Start here\n" + STEPS)
    with gr.Row(equal_height=True):
        active = gr.HTML(active_runs_html(store.list_runs()), elem_id="start-active", scale=4)
        watch = gr.Button("Watch it in Train", visible=False, scale=1, elem_id="start-watch")
    gr.Markdown("### Bundled samples: one click opens Train with the sample and its task's settings")
    buttons = {}
    with gr.Row():
        for name in samples:
            with gr.Column(min_width=200):
                gr.HTML(card_html(cards[name]), elem_id=f"start-card-{name}")
                buttons[name] = gr.Button(f"Train on {name}", variant="primary", elem_id=f"start-train-{name}")
    gr.Markdown("### Datasets in this workspace (click one to train on it)")
    gallery = gr.Gallery(label="Datasets", columns=6, height="auto", allow_preview=False, object_fit="contain",
                         elem_id="start-datasets", buttons=[])
    shown_names = gr.State([])
    signature = gr.State(None)
    timer = gr.Timer(TICK_S)

    def show():
        """(gallery, the names in its order) for the datasets there are now."""
        now = dataset_cards(ws)
        return [(c["mosaic"], card_caption(c)) for c in now], [c["name"] for c in now]

    def active_view(current):
        records = store.list_runs()
        sig = [(r["id"], r["status"], r.get("epoch"), r.get("eta_s")) for r in records if r["status"] in ACTIVE]
        if sig == current:
            return gr.skip(), gr.skip(), gr.skip()
        return active_runs_html(records), gr.update(visible=bool(sig)), sig

    def refresh(current):
        return (*show(), *active_view(current))

    timer.tick(active_view, signature, [active, watch, signature], api_visibility="private", show_progress="hidden")
    return SimpleNamespace(buttons=buttons, gallery=gallery, shown_names=shown_names, watch=watch,
                           on_show=(refresh, [signature], [gallery, shown_names, active, watch, signature]))


def wire(start, tabs, train):
    """Connect the page's clicks to the Train tab (built after this one)."""
    outputs = [tabs, *train.open_outputs]

    def open_train(name):
        return (gr.Tabs(selected="train"), *train.open_dataset(name))

    for name, button in start.buttons.items():
        button.click(lambda n=name: open_train(n), None, outputs, api_visibility="private", show_progress="hidden")

    def pick(names, evt: gr.SelectData):
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not isinstance(index, int) or not 0 <= index < len(names):
            return (gr.skip(),) * len(outputs)
        return open_train(names[index])

    start.gallery.select(pick, start.shown_names, outputs, api_visibility="private", show_progress="hidden")
    start.watch.click(lambda *a: (gr.Tabs(selected="train"), *train.follow_active(*a)), train.follow_inputs,
                      [tabs, *train.follow_outputs], api_visibility="private", show_progress="hidden")
