"""What every tab's build(ctx) gets: the workspace, the run store, the scheduler and whether the
studio is shared publicly; and the one way a handler turns a refusal into a message for the
person at the screen."""
import functools
import logging
from dataclasses import dataclass

import gradio as gr

from studio.jobs import Jobs
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
        store = Store(workspace.store_dir)
        if runner is not None:
            runner.start(workspace, store)
        return cls(workspace, store, Jobs(workspace, store, slots=slots, runner=runner), shared=bool(shared))


def is_shared(ctx) -> bool:
    """True for a studio served over a public link (contexts built by tests may lack the field)."""
    return bool(getattr(ctx, "shared", False))


def user_errors(fn):
    """ConfigError, JobError, WorkspaceError... (all ValueErrors with a sentence) become a
    gr.Error with that sentence; anything else a short sentence, its traceback in the log."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ValueError as e:  # DatasetError, WorkspaceError and friends carry a sentence
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(e).__name__}: {e}).", print_exception=False) from None
    return wrapper
