"""Picture inputs that answer a bad upload with one sentence, before anything decodes it.

gr.Image opens an upload with PIL before the handler runs: a text file named .png then fails
inside Gradio with "Could not preprocess input component at index 1 ..." and server temp paths,
and a 12000 x 12000 PNG of 140 KB is decoded to half a gigabyte. PictureInput is gr.Image (the
same front end: is_template) whose preprocess first reads the header (safe_io.check_pixels: the
one pixel limit of every image entry point, the dataset builders' too) and refuses a pixel bomb,
then turns any other failure into a sentence naming the file by the name the person gave it.
PictureEditor does the same for every picture a gr.ImageEditor receives. Gradio's component
metaclass writes a typing stub, pictures.pyi, beside this file on import (ignored by git)."""
import base64
import io

import gradio as gr

from studio.datasets.safe_io import TooManyPixels, UnreadableImage, check_pixels

READABLE = "PNG, JPEG, WebP, BMP or GIF"


def unreadable_sentence(name) -> str:
    shown = f"'{name}'" if name else "That file"
    return f"{shown} is not a picture that can be opened ({READABLE}): choose another file."


def check_payload(payload) -> None:
    """gr.Error with one sentence when an uploaded picture is not one or has over MAX_PIXELS pixels."""
    if payload is None:
        return
    url, path = getattr(payload, "url", None), getattr(payload, "path", None)
    name = getattr(payload, "orig_name", None)
    try:
        if url and url.startswith("data:"):  # a picture sent inline (webcam, some clients)
            check_pixels(io.BytesIO(base64.b64decode(url.split(",", 1)[-1])), "The picture")
        elif path:
            check_pixels(path, f"'{name}'" if name else "The picture")
    except TooManyPixels as e:
        raise gr.Error(str(e), print_exception=False) from None
    except (UnreadableImage, ValueError):  # not a picture, or undecodable base64
        raise gr.Error(unreadable_sentence(name), print_exception=False) from None


class PictureInput(gr.Image):
    is_template = True  # rendered by the front end as a plain gr.Image

    def preprocess(self, payload):
        check_payload(payload)
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # PIL's UnidentifiedImageError, a truncated file, ...
            raise gr.Error(unreadable_sentence(getattr(payload, "orig_name", None)), print_exception=False) from None


class PictureEditor(gr.ImageEditor):
    """The page offers no upload in the mask painter, but a script may send any payload."""
    is_template = True  # rendered by the front end as a plain gr.ImageEditor

    def preprocess(self, payload):
        if payload is not None:
            for part in [getattr(payload, "background", None), getattr(payload, "composite", None),
                         *(getattr(payload, "layers", None) or [])]:
                check_payload(part)
        return super().preprocess(payload)
