"""A picture input whose unreadable upload reaches the person as one sentence.

gr.Image opens an upload with PIL before the handler runs; a text file named .png then fails
inside Gradio with "Could not preprocess input component at index 1 ..." and server temp paths.
PictureInput is gr.Image (the same front end: is_template) whose preprocess turns that failure
into a gr.Error naming the file by the name the person gave it. Gradio's component metaclass
writes a typing stub, pictures.pyi, beside this file on import (ignored by git)."""
import gradio as gr

READABLE = "PNG, JPEG, WebP, BMP or GIF"


def unreadable_sentence(name) -> str:
    shown = f"'{name}'" if name else "That file"
    return f"{shown} is not a picture that can be opened ({READABLE}): choose another file."


class PictureInput(gr.Image):
    is_template = True  # rendered by the front end as a plain gr.Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # PIL's UnidentifiedImageError, a truncated file, ...
            raise gr.Error(unreadable_sentence(getattr(payload, "orig_name", None)), print_exception=False) from None
