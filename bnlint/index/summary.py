"""One file's text → its `FileSummary`: the facts other files and the rules need.

Summaries are built with the standard library's `ast` (about 6x faster to parse than
libcst, and no 0.4 s import), are plain JSON and depend only on the file's text, so
the engine caches them by content hash. Names are resolved through the file's own
imports here; `~Name` marks a name defined at the top of this file and `.mod.Name` a
relative import, both resolved to project-wide names by `ProjectIndex`.

A layer *spec* is a JSON object: `call` (the qualified callee, or None when unknown),
`kw` (literal keyword and positional arguments we care about), `pos` ([line, column,
end line, end column], columns in code points as libcst counts them), and for
containers `items` (children in order) or for `a if c else b` `alts`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bnlint.index.flow import ForwardFlow
from bnlint.index.functions import _SAME_MODEL_METHODS, _WRAPPERS, FunctionFacts

SUMMARY_VERSION = 9
# A file none of whose text matches cannot define a model, a layer helper or a
# training/evaluation function: it gets an empty summary without being parsed.
_INTERESTING = (
    "torch",
    "nn",
    "Module",
    "eval",
    "train",
    "model",
    "Loader",
    "loader",
    "add_argument",
    "requires_grad",
)
_LAYER_KEYWORDS = (
    "bias",
    "affine",
    "momentum",
    "track_running_stats",
    "norm_eval",
    "in_features",
    "out_features",
    "num_features",
    "out_channels",
    "p",
)

Json = dict[str, Any]
# `return model, optimizer`: a factory whose items callers unpack (bnlint.index.loaders,
# ProjectIndex._result_kind) needs its bindings.
_RETURNS_TUPLE = re.compile(r"\breturn\s+\w+\s*,")
# Text that a function must contain for its mode facts to matter.
_MODE_WORDS = (
    ".eval(",
    ".train(",
    "requires_grad",
    "Loader",
    "loader",  # loaders handed on by name (bnlint.index.loaders)
    "add_argument",  # batch-size options (bnlint.index.loaders)
    "backward",
    "no_grad",
    "inference_mode",
    "model(",
    "net(",
    "Net(",
    "forward(",
    "model = ",
    "model, ",
)


@dataclass
class FileSummary:
    """What one file defines: imports, module-level aliases, classes (with their layers,
    forward data flow and mode overrides) and functions (with their mode facts)."""

    path: str
    digest: str
    imports: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, Any] = field(default_factory=dict)
    classes: dict[str, Json] = field(default_factory=dict)
    functions: dict[str, Json] = field(default_factory=dict)
    # The file did not parse: rules that read only summaries must not call it clean.
    unparsable: bool = False
    # A hash of what the summary says, positions left out (see `meaning`); kept with the
    # summary in the cache so a warm run does not recompute it for every file.
    _meaning: str | None = field(default=None, compare=False, repr=False)

    def meaning(self) -> str:
        """A hash of the summary without positions or the text digest: moving code
        inside a file does not change it, so other files' cached findings survive."""
        if self._meaning is None:
            data = self.to_json(with_meaning=False)
            data.pop("digest", None)
            text = json.dumps(_without_positions(data), sort_keys=True)
            self._meaning = hashlib.sha1(text.encode()).hexdigest()
        return self._meaning

    def to_json(self, with_meaning: bool = True) -> Json:
        data: Json = {
            "version": SUMMARY_VERSION,
            "path": self.path,
            "digest": self.digest,
            "imports": self.imports,
            "aliases": self.aliases,
            "classes": self.classes,
            "functions": self.functions,
            "unparsable": self.unparsable,
        }
        if with_meaning:
            data["meaning"] = self.meaning()
        return data

    @classmethod
    def from_json(cls, data: Json) -> FileSummary:
        if data.get("version") != SUMMARY_VERSION:
            raise ValueError("summary written by another bnlint version")
        return cls(
            path=data["path"],
            digest=data["digest"],
            imports=dict(data["imports"]),
            aliases=dict(data["aliases"]),
            classes=dict(data["classes"]),
            functions=dict(data["functions"]),
            unparsable=bool(data.get("unparsable", False)),
            _meaning=data.get("meaning"),
        )

    @property
    def is_empty(self) -> bool:
        return not (self.classes or self.functions or self.aliases or self.unparsable)


def _without_positions(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_positions(v) for k, v in data.items() if k != "pos"}
    if isinstance(data, list):
        return [_without_positions(v) for v in data]
    return data


def digest_of(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def summarize_file(path: str, text: str) -> FileSummary:
    """The summary of `text` (reported as `path`). Never raises on bad input: a file
    that does not parse has an empty summary (BN000 reports it)."""
    summary = FileSummary(path=path, digest=digest_of(text))
    if not any(word in text for word in _INTERESTING):
        return summary
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return FileSummary(path=path, digest=summary.digest, unparsable=True)
    try:
        _Summarizer(summary, text).run(tree)
    except RecursionError:
        return FileSummary(path=path, digest=summary.digest, unparsable=True)
    return summary


class Names:
    """Resolves a Name/Attribute chain through the file's imports and top-level names."""

    def __init__(self, imports: dict[str, str], local: set[str], aliases: dict[str, Any]) -> None:
        self.imports = imports
        self.local = local
        self.aliases = aliases

    def qualify(self, node: ast.expr | None) -> str | None:
        dotted = dotted_name(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if head in self.aliases and isinstance(self.aliases[head], str) and not rest:
            return str(self.aliases[head])
        if head in self.imports:
            base = self.imports[head]
        elif head in self.local:
            base = "~" + head
        else:
            return None
        return f"{base}.{rest}" if rest else base


def dotted_name(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def literal(node: ast.AST | None) -> Any:
    """A JSON-able literal value, or the marker "?" when the value is not a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bool | int | float | str | None):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = literal(node.operand)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner
    return "?"


class Positions:
    """ast positions (UTF-8 byte columns) → libcst positions (code point columns)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def column(self, line: int, offset: int) -> int:
        if 0 < line <= len(self.lines):
            text = self.lines[line - 1]
            if not text.isascii():
                return len(text.encode("utf-8")[:offset].decode("utf-8", "replace"))
        return offset

    def of(self, node: ast.AST) -> list[int]:
        line = getattr(node, "lineno", 0)
        end = getattr(node, "end_lineno", line) or line
        return [
            line,
            self.column(line, getattr(node, "col_offset", 0)),
            end,
            self.column(end, getattr(node, "end_col_offset", 0) or 0),
        ]


class _Summarizer:
    def __init__(self, summary: FileSummary, text: str) -> None:
        self.summary = summary
        self.positions = Positions(text)

    def run(self, tree: ast.Module) -> None:
        top = list(_top_level(tree.body))
        imports = self.summary.imports
        local: set[str] = set()
        for statement in top:
            if isinstance(statement, ast.Import):
                for alias in statement.names:
                    if alias.asname:
                        imports[alias.asname] = alias.name
                    else:
                        head = alias.name.split(".")[0]
                        imports[head] = head
            elif isinstance(statement, ast.ImportFrom):
                source = "." * statement.level + (statement.module or "")
                for alias in statement.names:
                    if alias.name == "*":
                        continue
                    joined = (
                        f"{source}.{alias.name}"
                        if source and not source.endswith(".")
                        else source + alias.name
                    )
                    imports[alias.asname or alias.name] = joined
            elif isinstance(statement, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                local.add(statement.name)
        names = Names(imports, local, self.summary.aliases)
        # Module-level aliases: `BN = nn.BatchNorm2d`, `Norm = partial(nn.BatchNorm2d, ...)`,
        # `BATCH_SIZE = 1`.
        for statement in top:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name):
                    value = _alias_value(statement.value, names)
                    if value is not None:
                        self.summary.aliases[target.id] = value
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                value = _alias_value(statement.value, names) if statement.value else None
                if value is not None:
                    self.summary.aliases[statement.target.id] = value
        _drop_mutated_dicts(self.summary.aliases, tree)
        layers = LayerBuilder(names, self.positions)
        for statement in top:
            if isinstance(statement, ast.ClassDef):
                self.summary.classes[statement.name] = self.summarize_class(
                    statement, names, layers
                )
            elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                facts = self.function_facts(statement, names, layers, None)
                if facts is not None:
                    self.summary.functions[statement.name] = facts
        module_code = [
            s
            for s in tree.body
            if not isinstance(
                s,
                ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.Import | ast.ImportFrom,
            )
        ]
        if module_code:
            facts = FunctionFacts(names, layers, self.positions).run_module(module_code)
            if facts["events"] or facts["layers"] or facts["bindings"]:
                self.summary.functions["<module>"] = facts

    def function_facts(
        self,
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        names: Names,
        layers: LayerBuilder,
        owner: str | None,
    ) -> Json | None:
        """Mode facts for functions whose text can hold them; for the others (most of a
        model zoo) only the layers they return, which is all other files need."""
        lines = self.positions.lines[function.lineno - 1 : function.end_lineno]
        text = "\n".join(lines)
        facts = FunctionFacts(names, layers, self.positions, owner=owner)
        if any(word in text for word in _MODE_WORDS) or _RETURNS_TUPLE.search(text):
            return facts.run(function)
        return facts.run_returns(function)

    def summarize_class(self, node: ast.ClassDef, names: Names, layers: LayerBuilder) -> Json:
        bases = [names.qualify(base) for base in node.bases]
        info: Json = {
            "bases": [base for base in bases if base],
            "unknown_bases": sum(base is None for base in bases),
            "pos": self.positions.of(node),
            "layers": {},
            "train_override": False,
            "refreezes": False,
            "norm_eval": False,
            "methods": {},
        }
        for statement in node.body:
            if isinstance(statement, ast.Assign | ast.AnnAssign):
                # Class-level `norm_eval = True` style flags.
                targets = (
                    statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                )
                if any(isinstance(t, ast.Name) and "norm_eval" in t.id for t in targets):
                    info["norm_eval"] = True
            if not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if any(
                "norm_eval" in arg.arg or "freeze_bn" in arg.arg for arg in _all_args(statement)
            ):
                info["norm_eval"] = True
            for attr, spec in layers.self_layers(statement):
                info["layers"].setdefault(attr, spec)
            if statement.name == "train":
                info["train_override"] = True
                info["refreezes"] = _refreezes(statement)
            elif statement.name == "forward":
                info["forward"] = ForwardFlow(names, self.positions).run(statement)
            if statement.name == "__init__":
                self._init_loaders(statement, names, layers, node.name, info)
                _init_attributes(statement, info)
            if statement.name not in ("__init__", "forward"):
                facts = self.function_facts(statement, names, layers, node.name)
                if facts is not None and (facts["events"] or facts["bindings"] or facts["returns"]):
                    info["methods"][statement.name] = facts
        return info

    def _init_loaders(
        self,
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        names: Names,
        layers: LayerBuilder,
        owner: str,
        info: Json,
    ) -> None:
        """Loaders a constructor stores on `self` (`self.train_loader = DataLoader(...)`),
        which the class's other methods iterate (bnlint.index.loaders)."""
        text = "\n".join(self.positions.lines[function.lineno - 1 : function.end_lineno])
        if "Loader" not in text:
            return
        facts = FunctionFacts(names, layers, self.positions, owner=owner).run(function)
        loaders = {k: v for k, v in facts["loaders"].items() if k.startswith("self.")}
        if loaders:
            info["init_loaders"] = loaders


def _init_attributes(function: ast.FunctionDef | ast.AsyncFunctionDef, info: Json) -> None:
    """Constructor parameters kept on `self` (`self.train_loader = train_loader`), so a
    loader passed to `Trainer(model, loader)` reaches the methods that iterate it."""
    params = [a.arg for a in [*function.args.posonlyargs, *function.args.args]][1:]
    params += [a.arg for a in function.args.kwonlyargs]
    kept: dict[str, str] = {}
    for statement in _statements(function.body):
        for attr, value in _self_assignments(statement):
            if isinstance(value, ast.Name) and value.id in params:
                kept.setdefault(value.id, attr)
    if kept:
        info["init_params"] = params
        info["init_attrs"] = kept


def _drop_mutated_dicts(aliases: dict[str, Any], tree: ast.Module) -> None:
    """A module-level config dict written anywhere in the file (`CFG["bs"] = 4`,
    `CFG.update(...)`) is not the literal any more."""
    dicts = {name for name, value in aliases.items() if isinstance(value, dict) and "dict" in value}
    if not dicts:
        return
    for node in ast.walk(tree):
        base = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
            base = node.value
            while isinstance(base, ast.Subscript):
                base = base.value
        elif isinstance(node, ast.Attribute) and node.attr in ("update", "setdefault", "pop"):
            base = node.value
        if isinstance(base, ast.Name) and base.id in dicts:
            del aliases[base.id]
            dicts.discard(base.id)


def _all_args(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.arg]:
    args = function.args
    return [*args.posonlyargs, *args.args, *args.kwonlyargs]


def _refreezes(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A `train()` override that puts something back into eval (or freezes BN) after
    the parent's `train()`."""
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "eval":
                return True
            if node.func.attr == "train" and node.args and literal(node.args[0]) is False:
                return True
            if "freeze" in node.func.attr or "norm_eval" in node.func.attr:
                return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and "freeze" in node.func.id
        ):
            return True
    return False


def _top_level(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, looking inside `if`/`try`/`with` (import guards)."""
    for statement in body:
        yield statement
        if isinstance(statement, ast.If):
            yield from _top_level(statement.body)
            yield from _top_level(statement.orelse)
        elif isinstance(statement, ast.Try):
            yield from _top_level(statement.body)
            for handler in statement.handlers:
                yield from _top_level(handler.body)
            yield from _top_level(statement.orelse)
        elif isinstance(statement, ast.With):
            yield from _top_level(statement.body)


def _alias_value(value: ast.expr, names: Names) -> Any:
    """What a module-level name stands for: a qualified class/function name, a partial
    of one, or a literal constant (for batch sizes). None when nothing useful."""
    if isinstance(value, ast.Name | ast.Attribute):
        return names.qualify(value)
    if isinstance(value, ast.Call):
        callee = names.qualify(value.func)
        if callee in ("functools.partial", "partial") and value.args:
            return names.qualify(value.args[0])
        return None
    constant = literal(value)
    if constant != "?" and isinstance(constant, int) and not isinstance(constant, bool):
        return {"const": constant}
    if isinstance(value, ast.Dict):
        # A config dict (`CONFIG = {"batch_size": 1, ...}`) read by loaders.
        from bnlint.index.functions import _dict_literal

        entries = _dict_literal(value)
        if entries and any(not isinstance(v, str) or v != "?" for v in entries.values()):
            return {"dict": entries}
    return None


class LayerBuilder:
    """Layer specs from constructor expressions, and the `self.<attr> = ...` layers a
    method creates (including `add_module`, `setattr`, lists turned into Sequential)."""

    def __init__(self, names: Names, positions: Positions) -> None:
        self.names = names
        self.positions = positions

    def spec(self, node: ast.expr, env: dict[str, Json] | None = None) -> Json | None:
        env = env or {}
        if isinstance(node, ast.IfExp):
            alts = [self.spec(node.body, env), self.spec(node.orelse, env)]
            return {"call": None, "alts": [a for a in alts if a], "pos": self.positions.of(node)}
        if isinstance(node, ast.Name) and node.id in env:
            return env[node.id]
        if not isinstance(node, ast.Call):
            return None
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in _SAME_MODEL_METHODS
            and isinstance(node.func.value, ast.Call)
        ):
            # `resnet34(...).cuda()`: the same module tree as the inner call.
            return self.spec(node.func.value, env)
        callee = self.names.qualify(node.func)
        if (callee or "").rsplit(".", 1)[-1] in _WRAPPERS and node.args:
            # `nn.DataParallel(resnet50())`: the wrapped model's tree.
            return self.spec(node.args[0], env)
        if callee is None and isinstance(node.func, ast.Name) and node.func.id in env:
            # A local variable bound to a class: `norm = nn.BatchNorm2d; norm(c)`.
            bound = env[node.func.id]
            callee = bound.get("ref") if isinstance(bound, dict) else None
        spec: Json = {"call": callee, "kw": {}, "pos": self.positions.of(node)}
        for index, arg in enumerate(node.args):
            if isinstance(arg, ast.Starred):
                spec["kw"]["*"] = True
                break
            # "?" for a computed argument: `nn.Dropout(rate)` must not read as the default.
            spec["kw"][f"#{index}"] = literal(arg)
        for keyword in node.keywords:
            if keyword.arg is None:
                spec["kw"]["**"] = True
            elif keyword.arg in _LAYER_KEYWORDS:
                spec["kw"][keyword.arg] = literal(keyword.value)
            elif keyword.arg == "norm_layer":
                # `resnet50(norm_layer=FrozenBatchNorm2d)`: the factory's BN is replaced.
                spec["norm_layer"] = self.names.qualify(keyword.value) or "?"
        if (
            node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            spec["arg0"] = node.args[0].value
        last = (callee or "").rsplit(".", 1)[-1]
        if last in ("Sequential", "ModuleList", "ModuleDict"):
            spec["items"] = self._items(node, env)
        return spec

    def _items(self, node: ast.Call, env: dict[str, Json]) -> list[Json | None]:
        items: list[Json | None] = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                bound = env.get(arg.value.id) if isinstance(arg.value, ast.Name) else None
                if bound is not None and "list" in bound:
                    items.extend(bound["list"])
                else:
                    items.append(None)
            elif isinstance(arg, ast.List | ast.Tuple):
                items.extend(self.spec(e, env) for e in arg.elts)
            elif isinstance(arg, ast.Dict):
                items.extend(self.spec(v, env) for v in arg.values)
            elif isinstance(arg, ast.Call) and (dotted_name(arg.func) or "").endswith(
                "OrderedDict"
            ):
                pairs = arg.args[0] if arg.args else None
                if isinstance(pairs, ast.List | ast.Tuple):
                    for pair in pairs.elts:
                        if isinstance(pair, ast.Tuple) and len(pair.elts) == 2:
                            items.append(self.spec(pair.elts[1], env))
                        else:
                            items.append(None)
                else:
                    items.append(None)
            elif isinstance(arg, ast.Name) and arg.id in env and "list" in env[arg.id]:
                items.extend(env[arg.id]["list"])
            else:
                items.append(self.spec(arg, env))
        return items

    def track(self, statement: ast.stmt, env: dict[str, Json]) -> None:
        """Update `env` (local name → spec, list of specs, or class reference)."""
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
            if isinstance(target, ast.Name):
                if isinstance(value, ast.List):
                    env[target.id] = {"list": [self.spec(e, env) for e in value.elts]}
                elif isinstance(value, ast.Name | ast.Attribute):
                    ref = self.names.qualify(value)
                    if ref is not None:
                        env[target.id] = {"ref": ref}
                    elif isinstance(value, ast.Name) and value.id in env:
                        env[target.id] = env[value.id]
                    else:
                        env.pop(target.id, None)
                else:
                    spec = self.spec(value, env)
                    if spec is not None:
                        env[target.id] = spec
                    else:
                        env.pop(target.id, None)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            bound = env.get(statement.target.id)
            if bound is not None and "list" in bound and isinstance(statement.value, ast.List):
                bound["list"].extend(self.spec(e, env) for e in statement.value.elts)
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            call = statement.value
            if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name):
                bound = env.get(call.func.value.id)
                if bound is not None and "list" in bound and call.args:
                    if call.func.attr == "append":
                        bound["list"].append(self.spec(call.args[0], env))
                    elif call.func.attr == "extend" and isinstance(call.args[0], ast.List):
                        bound["list"].extend(self.spec(e, env) for e in call.args[0].elts)

    def self_layers(
        self, method: ast.FunctionDef | ast.AsyncFunctionDef
    ) -> Iterator[tuple[str, Json]]:
        """`(attr, spec)` for each `self.<attr> = <layer>` in a method, in order."""
        env: dict[str, Json] = {}
        params = {arg.arg for arg in _all_args(method)}
        for statement in _statements(method.body):
            if isinstance(statement, ast.Assign | ast.AugAssign | ast.Expr):
                self.track(statement, env)
            for attr, value in _self_assignments(statement):
                if isinstance(value, ast.Name) and value.id in params and value.id not in env:
                    continue
                spec = self.spec(value, env)
                if spec is not None:
                    yield attr, spec


def _statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of a function body in textual order, descending into blocks."""
    for statement in body:
        yield statement
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(statement, name, None)
            if isinstance(inner, list) and not isinstance(
                statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                yield from _statements(inner)
        if isinstance(statement, ast.Try):
            for handler in statement.handlers:
                yield from _statements(handler.body)


def _self_assignments(statement: ast.stmt) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                yield target.attr, statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        target = statement.target
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
        ):
            yield target.attr, statement.value
    elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        call = statement.value
        name = dotted_name(call.func)
        if name == "self.add_module" and len(call.args) == 2:
            key = literal(call.args[0])
            if isinstance(key, str):
                yield key, call.args[1]
        elif name == "setattr" and len(call.args) == 3 and dotted_name(call.args[0]) == "self":
            key = literal(call.args[1])
            if isinstance(key, str):
                yield key, call.args[2]
