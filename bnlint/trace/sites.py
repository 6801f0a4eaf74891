"""Which user line is responsible: frame walks that skip torch's and bnlint's own frames.

A walk costs about 17 µs on a 21-frame stack (ecosystem.md 2.4), so the tracer walks
only when a finding is new, never on every forward; `inspect.stack()` (which reads
source files) is never used.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

from bnlint.events import Site

# Frames of nn.Module.__call__: the hook runs inside them, user forward code between them.
_MODULE_CALL_FUNCTIONS = frozenset({"_call_impl", "_wrapped_call_impl"})


def _directory_of(module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(file)) + os.sep if file else None


# Training frameworks whose frames are not the user's line either (their loops call
# `model.eval()` and the user's `training_step`): counted as library code once loaded.
FRAMEWORKS = ("lightning", "pytorch_lightning", "transformers", "accelerate")


def _library_directories() -> tuple[str, ...]:
    names = ("torch", "bnlint", "bnlint.rules", *FRAMEWORKS)
    found = [_directory_of(name) for name in names]
    return tuple(directory for directory in found if directory)


_LIBRARIES: tuple[str, ...] | None = None


def refresh_libraries() -> None:
    """Look again for loaded frameworks (an integration calls it when it starts)."""
    global _LIBRARIES
    _LIBRARIES = None
    _LIBRARY_FILES.clear()


# filename → is_library_file(filename): a dict lookup is cheaper than the prefix tests
# on the paths that every mode change walks.
_LIBRARY_FILES: dict[str, bool] = {}


def is_library_file(filename: str) -> bool:
    """True for frames of torch, bnlint (and its rules) and Python's frozen modules."""
    known = _LIBRARY_FILES.get(filename)
    if known is not None:
        return known
    global _LIBRARIES
    if _LIBRARIES is None:
        _LIBRARIES = _library_directories()
    library = filename.startswith(_LIBRARIES) or filename.startswith("<")
    if len(_LIBRARY_FILES) < 4096:
        _LIBRARY_FILES[filename] = library
    return library


@dataclass(frozen=True)
class Stack:
    """The user lines on the current stack that matter to a finding."""

    # The innermost user frame (a line in a user `forward`, or the calling line).
    inner: Site | None
    # The user line that called the outermost module (the loop's `model(x)`); the same
    # as `inner` when no module call is on the stack.
    entry: Site | None
    # The module whose call is outermost on the stack (the model), if any.
    root: Any


def _site(frame: FrameType) -> Site:
    code = frame.f_code
    return Site(display_path(code.co_filename), frame.f_lineno, code.co_qualname)


def display_path(filename: str) -> str:
    """Relative to the working directory when the file is under it, as ruff prints."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith(os.pardir) else relative


def walk(frame: FrameType | None = None) -> Stack:
    """Walk outward from `frame` (default: the caller) once."""
    start = frame if frame is not None else sys._getframe(1)
    inner: Site | None = None
    entry: Site | None = None
    root: Any = None
    inside_module_call = False
    current: FrameType | None = start
    while current is not None:
        filename = current.f_code.co_filename
        if is_library_file(filename):
            if current.f_code.co_name in _MODULE_CALL_FUNCTIONS and not filename.startswith("<"):
                inside_module_call = True
                entry = None
                root = current.f_locals.get("self")
        else:
            if inner is None:
                inner = _site(current)
            if inside_module_call and entry is None:
                entry = _site(current)
        current = current.f_back
    return Stack(inner=inner, entry=entry or inner, root=root)


_SITES: dict[tuple[str, int, str], Site] = {}


def first_user_site(frame: FrameType | None) -> Site | None:
    """The innermost user line, without building anything else (cheap: mode changes)."""
    current = frame
    while current is not None:
        code = current.f_code
        if not is_library_file(code.co_filename):
            key = (code.co_filename, current.f_lineno, code.co_qualname)
            site = _SITES.get(key)
            if site is None:
                site = _SITES[key] = Site(display_path(key[0]), key[1], key[2])
            return site
        current = current.f_back
    return None


def on_stack(function_names: frozenset[str], frame: FrameType | None = None) -> bool:
    """True when a function with one of these names is running (any file)."""
    current: FrameType | None = frame if frame is not None else sys._getframe(1)
    while current is not None:
        if current.f_code.co_name in function_names:
            return True
        current = current.f_back
    return False
