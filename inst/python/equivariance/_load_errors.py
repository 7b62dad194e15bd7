"""What a file that ``load_model`` cannot read is, and what to do, in plain words.

torch's own messages tell the reader to turn safe loading off ("Re-running torch.load
with weights_only set to False will likely succeed"), to allow-list classes
(``add_safe_globals``), or to "file an issue", and show Python code: none of that
reaches a user of this package, who may be calling from R. The message says what the
file is not (as far as its first bytes and torch's reason tell) and what to do.
"""

from __future__ import annotations

import re

__all__ = ["load_failure"]

_WHAT_TO_DO = ("load_model() reads the files that save_model() writes; save the model "
               "with save_model() where it was trained")


def _looks_like(head: bytes) -> str:
    """What the first bytes of a file say it is."""
    if not head:
        return "it is empty"
    if head.startswith(b"\x93NUMPY"):
        return "it is a NumPy array file (.npy)"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff")):
        return "it is an image"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive but not one saved by save_model()"
    if head.startswith(b"\x80"):
        return "it is a Python pickle, not a model file"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:64]):
        return "it is a text file"
    return "it is not a file saved by PyTorch"


def load_failure(err: BaseException, path: str, head: bytes, name: str = "path") -> ValueError:
    """The error to raise when ``torch.load`` fails on ``path``.

    Args:
        err: torch's exception (its advice is not repeated).
        path: the file.
        head: the file's first bytes.
        name: the argument that gave the file.

    Returns:
        A ``ValueError`` that says what the file is not and what to do.
    """
    text = str(err)
    where = f"`{name}` {path!r} is not a model file saved by save_model()"
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:  # a pickle of Python objects: loading it would run code
        return ValueError(
            f"{where}: it holds Python objects (it refers to {found.group(1)}), such "
            "as a whole model pickled with torch's save function, and such a file is never "
            "loaded because loading it could run any code. Save the model with save_model() "
            "where it was trained; or save its weights (a state dict) and load them into a "
            "model of the same architecture with load_model(path, model = that model)")
    if "central directory" in text or "zip archive" in text or "PytorchStreamReader" in text:
        return ValueError(f"`{name}` {path!r} is damaged or truncated (the end of the "
                          "archive is missing or corrupt): save the model again, or copy the "
                          "file again")
    return ValueError(f"{where}: {_looks_like(head)}. {_WHAT_TO_DO}")
