"""A picture input whose unreadable upload reaches the person as one sentence.

gr.Image opens an upload with PIL before the handler runs; a text file named .png then fails
inside Gradio with "Could not preprocess input component at index 1 ..." and server temp paths.
picture_input() is a gr.Image whose preprocess turns that failure into a gr.Error naming the
file by the name the person gave it. (The instance's method is wrapped rather than gr.Image
subclassed: Gradio's component metaclass writes a .pyi file beside any subclass's source.)"""
import functools

import gradio as gr

READABLE = "PNG, JPEG, WebP, BMP or GIF"


def unreadable_sentence(name) -> str:
    shown = f"'{name}'" if name else "That file"
    return f"{shown} is not a picture that can be opened ({READABLE}): choose another file."


def picture_input(**kwargs) -> gr.Image:
    image = gr.Image(**kwargs)
    plain = image.preprocess

    @functools.wraps(plain)
    def preprocess(payload):
        try:
            return plain(payload)
        except gr.Error:
            raise
        except Exception:  # PIL's UnidentifiedImageError, a truncated file, ...
            raise gr.Error(unreadable_sentence(getattr(payload, "orig_name", None)), print_exception=False) from None

    image.preprocess = preprocess
    return image
