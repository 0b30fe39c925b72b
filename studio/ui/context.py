"""What every tab's build(ctx) gets: the workspace, the run store, the scheduler and whether the
studio is shared publicly; and the one way a handler turns a refusal into a message for the
person at the screen."""
import functools
import logging
import re
from dataclasses import dataclass

import gradio as gr

from studio.jobs import Jobs
from studio.served import clear_served
from studio.store import Store
from studio.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class StudioContext:
    workspace: Workspace
    store: Store
    jobs: Jobs
    # Launched with --share: anyone with the link is a visitor, so nothing may read this
    # machine's folders on their request (see is_shared).
    shared: bool = False

    @classmethod
    def open(cls, root=None, slots=None, shared: bool = False, runner=None) -> "StudioContext":
        """`runner`: None for local processes, or a RayRunner not yet started (started here,
        which checks that every node of the cluster sees the workspace)."""
        workspace = Workspace.open(root)
        clear_served(workspace)
        store = Store(workspace.store_dir)
        if runner is not None:
            runner.start(workspace, store)
        return cls(workspace, store, Jobs(workspace, store, slots=slots, runner=runner), shared=bool(shared))


def is_shared(ctx) -> bool:
    """True for a studio served over a public link (contexts built by tests may lack the field)."""
    return bool(getattr(ctx, "shared", False))


# An absolute path (not a URL, not "train/"): /any/folders/name -> name.
_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s'\"`()<>,;|/]+/)*([^\s'\"`()<>,;|/]*)")


def hide_paths(message: str) -> str:
    """A message for the page without the folders of the host: the trainers name the files they
    refuse by full path (useful on the command line); a visitor sees the file's name alone."""
    return _PATH.sub(lambda m: m.group(1) or "/", message)


def user_errors(fn):
    """ConfigError, JobError, WorkspaceError... (all ValueErrors with a sentence) become a
    gr.Error with that sentence; anything else a short sentence, its traceback in the log.
    Absolute paths are cut to the file's name (hide_paths)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ValueError as e:  # DatasetError, WorkspaceError and friends carry a sentence
            raise gr.Error(hide_paths(str(e)), print_exception=False) from None
        except Exception as e:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(hide_paths(f"Something went wrong ({type(e).__name__}: {e})."),
                           print_exception=False) from None
    return wrapper


def said_in_first_output(fn, n_outputs: int):
    """`fn` (a user_errors handler) for a button on the page: its refusal comes back as the first
    output ("⚠ sentence", a Markdown that says how the action went) with the other outputs
    cleared, as they would be stale. A gr.Error would put the sentence in a toast and also mark
    every output with a red "Error" badge (Gradio does so for each output of a failed event,
    unless its progress is hidden, and a builder's progress bar is worth keeping)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as e:
            return (f"⚠ {e.message}", *([None] * (n_outputs - 1)))

    return wrapper


def click_said_and_api(button, fn, inputs, outputs, api_name: str, **kwargs):
    """A builder's button: on the page, refusals come back as its first output's sentence
    (said_in_first_output); the API endpoint `api_name` (docs/API.md) keeps raising them, so a
    client still gets an AppError with the sentence. The endpoint hangs on a hidden button with
    the same inputs, so uploads reach it exactly as they reach the page's."""
    button.click(said_in_first_output(fn, len(outputs)), inputs, outputs, api_name=False, **kwargs)
    gr.Button(visible=False).click(fn, inputs, outputs, api_name=api_name, **kwargs)
