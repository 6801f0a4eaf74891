"""Where a file's models come from: weights loaded from released or pretrained
checkpoints, and files that are tests rather than models anyone trains.

Structural advice (a redundant bias, a BatchNorm at the output) changes a model's
parameters. Where the file loads checkpoints strictly (a model URL, `load_url`,
`load_state_dict_from_url`, Lightning's `load_from_checkpoint`, a `load_state_dict`
without `strict=False`), the maintainers cannot take the advice without breaking the
weights they or their users already have (`yjh0410/yolov2-yolov3_PyTorch#35` declined
a bias fix for this reason). A `strict=False` load already tolerates changed keys, so
it does not count. Test files build throwaway models: their structure is not a defect
anyone ships.
"""

from __future__ import annotations

import os
import re

# A download of weights: an URL ending in a checkpoint extension, or a loader of URLs.
_WEIGHTS_URL = re.compile(r"https?://[^\s'\"]+\.(?:pth|pt|pkl|ckpt|tar|bin|npz|h5)\b")
_URL_LOADERS = (
    "load_state_dict_from_url",
    "load_url(",
    "load_from_checkpoint(",
    "from_pretrained(",
    "hub.load(",
)
_LOAD_STATE_DICT = ".load_state_dict("


def loads_checkpoints(text: str) -> bool:
    """The file loads released or saved weights strictly into its models."""
    if any(loader in text for loader in _URL_LOADERS):
        return True
    if "http" in text and _WEIGHTS_URL.search(text):
        return True
    start = text.find(_LOAD_STATE_DICT)
    while start != -1:
        if not _strict_false(text, start + len(_LOAD_STATE_DICT)):
            return True
        start = text.find(_LOAD_STATE_DICT, start + 1)
    return False


def _strict_false(text: str, start: int) -> bool:
    """Whether the call whose arguments start at `start` passes `strict=False`."""
    depth, end, stop = 1, start, min(len(text), start + 2000)
    while end < stop and depth:
        if text[end] == "(":
            depth += 1
        elif text[end] == ")":
            depth -= 1
        end += 1
    return re.search(r"\bstrict\s*=\s*False\b", text[start:end]) is not None


def is_test_file(root: str, path: str) -> bool:
    """A file of a test suite: under a `test`/`tests` folder of the project, or named
    `test_*.py` / `*_test.py` / `conftest.py`."""
    try:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    except ValueError:
        relative = path
    if relative.startswith(".."):
        relative = os.path.basename(path)
    parts = relative.replace(os.sep, "/").split("/")
    name = parts[-1]
    stem = name.rsplit(".", 1)[0]
    if stem.startswith("test_") or stem.endswith("_test") or stem == "conftest":
        return True
    return any(part in ("test", "tests") for part in parts[:-1])
