"""Dataset builders: each turns a user's pictures into a new dataset folder with a manifest.

Every builder writes WORKSPACE/datasets/NAME atomically (assembled under the workspace's tmp
folder, renamed at the end), never touches its source, and returns a small report dict that
the Data tab shows. Bad input raises DatasetError with a sentence a person can act on.
"""
from .errors import DatasetError

__all__ = ["DatasetError"]
