"""The studio's Gradio interface: build_app(ctx) -> gr.Blocks (see studio/ui/app.py)."""


def build_app(ctx):
    from .app import build_app as build  # gradio loads on first use, not on `import studio.ui`

    return build(ctx)


__all__ = ["build_app"]
