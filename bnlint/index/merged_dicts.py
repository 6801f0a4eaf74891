"""Config dicts a function builds by merging and returns.

Training scripts often assemble their configuration in one function:

    def get_config(config_path):
        config = {}
        config.update(defaults())                 # a project function's dict
        spec = importlib.util.spec_from_file_location("cfg", config_path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        config.update(loaded.config)              # a config file's module dict
        return config

`returned_dict` reads such a function's straight-line body into the parts merged, in
order: `{"dict": entries}` (a literal), `{"returned": callee}` (what a project function
returns), `{"module": where, "attr": name}` (a module-level dict of a file loaded by
path, `where` a literal path `{"const": ...}` or a parameter `{"param": ...}`) or
`{"unknown": True}`. `item` reads a key path out of the merge: `update()` is shallow, so
the last part holding the first key decides, and a part whose keys cannot be read may
hold any key: the value is then unknown ("?"). Anything else done with the dict (a
write, a call it is passed to, an update inside a branch) gives no record at all.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from typing import Any, Protocol

Json = dict[str, Any]
_SPEC = "spec_from_file_location"
_MODULE = "module_from_spec"
_DEPTH = 3
_ABSENT = object()


def returned_dict(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    params: list[str],
    literal_dict: Callable[[ast.Dict], dict[str, Any] | None],
    callee: Callable[[ast.expr], str | None],
    text: str,
) -> list[Json] | None:
    """The parts of the dict `function` (source `text`) returns, or None when it is
    not read. The caller passes only functions whose text holds one `return` (so none
    in a branch or a nested function) and a `{`."""
    body = function.body
    if not isinstance(body[-1], ast.Return):
        return None
    returned = body[-1].value
    if isinstance(returned, ast.Dict):
        part = _part(returned, {}, params, literal_dict, callee)
        return None if "unknown" in part else [part]
    if not isinstance(returned, ast.Name):
        return None
    name = returned.id
    if f"{name} = {{" not in text and f"{name}.update(" not in text:
        return None
    parts: list[Json] | None = None
    modules: dict[str, Json] = {}
    specs: dict[str, Json] = {}
    for statement in body[:-1]:
        mentions = any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(statement))
        target = _assigned_name(statement)
        value = statement.value if isinstance(statement, ast.Assign) else None
        if target == name and value is not None and parts is None:
            parts = [_part(value, modules, params, literal_dict, callee)]
        elif mentions and parts is not None and _is_update(statement, name):
            call = statement.value  # type: ignore[attr-defined]
            parts.extend(_update_parts(call, modules, params, literal_dict, callee))
        elif mentions:
            return None
        elif target is not None and isinstance(value, ast.Call):
            _track_loading(target, value, params, specs, modules)
    if parts is None or all("unknown" in part for part in parts):
        return None
    return parts


def _assigned_name(statement: ast.stmt) -> str | None:
    if (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
    ):
        return statement.targets[0].id
    return None


def _is_update(statement: ast.stmt, name: str) -> bool:
    """`name.update(...)` as a statement of its own, mentioning `name` nowhere else."""
    if not isinstance(statement, ast.Expr) or not isinstance(statement.value, ast.Call):
        return False
    func = statement.value.func
    if not (
        isinstance(func, ast.Attribute)
        and func.attr == "update"
        and isinstance(func.value, ast.Name)
        and func.value.id == name
    ):
        return False
    arguments = [*statement.value.args, *(k.value for k in statement.value.keywords)]
    return not any(isinstance(n, ast.Name) and n.id == name for a in arguments for n in ast.walk(a))


def _update_parts(
    call: ast.Call,
    modules: dict[str, Json],
    params: list[str],
    literal_dict: Callable[[ast.Dict], dict[str, Any] | None],
    callee: Callable[[ast.expr], str | None],
) -> list[Json]:
    parts = [_part(argument, modules, params, literal_dict, callee) for argument in call.args]
    if call.keywords:
        # `cfg.update(batch_size=1)`: no literal dict a finding could point at.
        parts.append({"unknown": True})
    return parts


def _part(
    node: ast.expr,
    modules: dict[str, Json],
    params: list[str],
    literal_dict: Callable[[ast.Dict], dict[str, Any] | None],
    callee: Callable[[ast.expr], str | None],
) -> Json:
    if isinstance(node, ast.Dict):
        entries = literal_dict(node)
        return {"dict": entries} if entries is not None else {"unknown": True}
    if isinstance(node, ast.Call) and not any(k.arg is None for k in node.keywords):
        name = callee(node.func)
        return {"returned": name} if name is not None else {"unknown": True}
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in modules
    ):
        return {"module": modules[node.value.id], "attr": node.attr}
    return {"unknown": True}


def _track_loading(
    target: str,
    value: ast.Call,
    params: list[str],
    specs: dict[str, Json],
    modules: dict[str, Json],
) -> None:
    """`spec = importlib.util.spec_from_file_location(name, path)` then
    `loaded = importlib.util.module_from_spec(spec)`: `loaded` is the file at `path`."""
    func = value.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called == _SPEC and len(value.args) >= 2:
        where = value.args[1]
        if isinstance(where, ast.Constant) and isinstance(where.value, str):
            specs[target] = {"const": where.value}
        elif isinstance(where, ast.Name) and where.id in params:
            specs[target] = {"param": where.id}
    elif (
        called == _MODULE
        and value.args
        and isinstance(value.args[0], ast.Name)
        and value.args[0].id in specs
    ):
        modules[target] = specs[value.args[0].id]


class ConfigValue(int):
    """An integer read from a config dict another function or file writes, with where:
    (path, scope, keys), scope a function's name or `<module>.<name>` for a module dict.
    BN003 reports a batch size of one there, the line a maintainer would change."""

    origin: tuple[str, str, tuple[str, ...]]

    def __new__(cls, value: int, origin: tuple[str, str, tuple[str, ...]]) -> ConfigValue:
        made = super().__new__(cls, value)
        made.origin = origin
        return made


class Reader(Protocol):
    """Reads the parts a merge refers to, from where the merge was recorded."""

    def returned(self, callee: str) -> tuple[list[Json], Reader] | None:
        """The parts a project function returns, with a reader at its place."""

    def file_dict(self, where: Json, attr: str) -> tuple[dict[str, Any], str] | None:
        """The module-level dict `attr` of the file loaded from `where`, with its path."""

    def scope(self) -> tuple[str, str]:
        """(path, function) where the merge was recorded."""


def item(parts: list[Json], keys: tuple[str, ...], reader: Reader) -> Any:
    """`merged[k1][k2]...` of the merge `parts` when it is an integer (a ConfigValue
    naming the literal it comes from), "?" otherwise."""
    if not keys:
        return "?"
    value, origin = _entry(parts, keys[0], reader, 0)
    for key in keys[1:]:
        value = value.get(key, "?") if isinstance(value, dict) else "?"
    if not isinstance(value, int) or isinstance(value, bool) or origin is None:
        return "?"
    return ConfigValue(value, (origin[0], origin[1], keys))


def _entry(
    parts: list[Json], key: str, reader: Reader, depth: int
) -> tuple[Any, tuple[str, str] | None]:
    """The value the merge holds at `key` with the (path, scope) of the literal that
    writes it; "?" when unknown, _ABSENT when no part has it."""
    for part in reversed(parts):
        if "returned" in part:
            inner = reader.returned(part["returned"]) if depth < _DEPTH else None
            if inner is None:
                return "?", None
            value, origin = _entry(inner[0], key, inner[1], depth + 1)
            if value is _ABSENT:
                continue
            return value, origin
        where: tuple[str, str] | None = None
        entries: Any = None
        if "dict" in part:
            entries, where = part["dict"], reader.scope()
        elif "module" in part:
            found = reader.file_dict(part["module"], part["attr"])
            if found is not None:
                entries, where = found[0], (found[1], f"<module>.{part['attr']}")
        if not isinstance(entries, dict):
            return "?", None
        if key in entries:
            return entries[key], where
    return _ABSENT, None


def literal_at(tree: ast.Module, scope: str, keys: tuple[str, ...]) -> ast.expr | None:
    """The integer literal a ConfigValue's origin names in its file's tree: at `keys`
    of a dict literal inside the function `scope` (`Class.method` for a method), or of
    the module-level dict `<module>.<name>`. None unless exactly one matches."""
    body: list[ast.stmt] = tree.body
    if scope.startswith("<module>."):
        name = scope.split(".", 1)[1]
        roots: list[ast.AST] = [
            s.value
            for s in body
            if isinstance(s, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in s.targets)
        ]
    else:
        roots = []
        for part in scope.split("."):
            found = [
                s
                for s in body
                if isinstance(s, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and s.name == part
            ]
            if len(found) != 1:
                return None
            body = found[0].body
            roots = [found[0]]
    matches = []
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.Dict):
                value: ast.expr | None = node
                for key in keys:
                    value = _dict_value(value, key)
                if isinstance(value, ast.Constant) and isinstance(value.value, int):
                    matches.append(value)
    return matches[0] if len(matches) == 1 else None


def _dict_value(node: ast.expr | None, key: str) -> ast.expr | None:
    if not isinstance(node, ast.Dict):
        return None
    for label, value in zip(node.keys, node.values, strict=True):
        if isinstance(label, ast.Constant) and label.value == key:
            return value
    return None


def project_file(root: str, paths: list[str], where: str) -> str | None:
    """The indexed file a path names, relative to the project root (or absolute)."""
    wanted = os.path.normpath(os.path.join(os.path.abspath(root), where))
    found = [path for path in paths if os.path.normpath(os.path.abspath(path)) == wanted]
    return found[0] if len(found) == 1 else None


def same_file(first: str, second: str) -> bool:
    """Two index paths of one file (the linted file may be keyed relative to the
    working directory, the project's files absolute)."""
    return first == second or os.path.abspath(first) == os.path.abspath(second)
