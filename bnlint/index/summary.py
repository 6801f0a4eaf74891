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
import builtins
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bnlint.index import choices
from bnlint.index.batch_generators import batch_generators
from bnlint.index.flow import ForwardFlow
from bnlint.index.functions import (
    _LIBRARIES,
    _SAME_MODEL_METHODS,
    _WRAPPERS,
    FunctionFacts,
    _dict_literal,
)
from bnlint.index.legacy_syntax import python3_reading
from bnlint.index.merged_dicts import returned_dict
from bnlint.index.momentum_params import momentum_facts
from bnlint.index.norm_args import is_norm_parameter, norm_arguments
from bnlint.index.settings import settings_of
from bnlint.word_search import has_word_match, word_matches

SUMMARY_VERSION = 20
# Separates a nested function's name from its enclosing function's (`train/_epoch`).
NESTED = "/"

_BUILTINS = frozenset(dir(builtins))
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
    "batch_size",  # a project batch generator (bnlint.index.batch_generators)
    "requires_grad",
    "momentum",
    "MOMENTUM",
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
    # segmentation_models_pytorch: the encoder and whether the decoder has BatchNorm.
    "encoder_name",
    "decoder_use_batchnorm",
    "psp_use_batchnorm",
    # Whether a factory loads released weights (`resnet50(weights=...)`).
    "pretrained",
    "weights",
)

Json = dict[str, Any]
# Library constructors never hold a project module passed to them.
_LIBRARY_ROOTS = _LIBRARIES
# Both searched at word starts (`word_search`): `\bself.`, `\breturn`.
_SELF_CALL = re.compile(r"self\.(\w+)\(")
# `return model, optimizer`: a factory whose items callers unpack (bnlint.index.loaders,
# ProjectIndex._result_kind) needs its bindings.
_RETURNS_TUPLE = re.compile(r"return\s+\w+\s*,")
# Text that a function must contain for its mode facts to matter.
_MODE_WORDS = (
    ".eval(",
    ".train(",
    "requires_grad",
    "Loader",
    "loader",  # loaders handed on by name (bnlint.index.loaders)
    "add_argument",  # batch-size options (bnlint.index.loaders)
    "batch_size",  # config dicts handed to loader factories (bnlint.index.loaders)
    "backward",
    # A training step taken by a helper object (`trainer.train_step(x)`,
    # `runner.step(x)`; bnlint.index.steppers).
    "step(",
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
    # Norm classes this file passes to or defaults for norm-like parameters
    # (`norm_layer=nn.BatchNorm2d`): see `norm_args.py`.
    norm_args: dict[str, list[str]] = field(default_factory=dict)
    # Momentum-named configuration defaults (`bnlint.index.settings`).
    settings: dict[str, Any] = field(default_factory=dict)
    # The file did not parse: rules that read only summaries must not call it clean.
    # Old code read through `legacy_syntax` has a summary and stays unparsable.
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
            "norm_args": self.norm_args,
            "settings": self.settings,
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
            norm_args=dict(data.get("norm_args", {})),
            settings=dict(data.get("settings", {})),
            unparsable=bool(data.get("unparsable", False)),
            _meaning=data.get("meaning"),
        )

    @property
    def is_empty(self) -> bool:
        re_exports = any(key.startswith("*") for key in self.imports) or (
            bool(self.imports) and _is_package_init(self.path)
        )
        return not (
            self.classes
            or self.functions
            or self.aliases
            or self.norm_args
            or self.settings
            or self.unparsable
            or re_exports
        )


def _without_positions(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_positions(v) for k, v in data.items() if k != "pos"}
    if isinstance(data, list):
        return [_without_positions(v) for v in data]
    return data


def _is_package_init(path: str) -> bool:
    """A package's `__init__.py`: its imports alone are what the package exports
    (`from .unet import Unet` makes `pkg.Unet` a name other files use)."""
    return path.replace("\\", "/").rsplit("/", 1)[-1] == "__init__.py"


def digest_of(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def summarize_file(path: str, text: str) -> FileSummary:
    """The summary of `text` (reported as `path`). Never raises on bad input: a file
    that does not parse has an empty summary (BN000 reports it), unless it is old code
    that `legacy_syntax` reads."""
    summary = FileSummary(path=path, digest=digest_of(text))
    # A package's `__init__` and a star import may only re-export names defined elsewhere.
    re_exports = _is_package_init(path) or "import *" in text
    if not re_exports and not any(word in text for word in _INTERESTING):
        return summary
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # Old code whose only obstacles are `print x` statements and `async=True`
        # keywords is read as Python 3 for the index; it stays unparsable for its own
        # rules (BN000).
        legacy = python3_reading(text)
        if legacy is None:
            return FileSummary(path=path, digest=summary.digest, unparsable=True)
        tree = legacy
        summary.unparsable = True
    global _WALKED
    _WALKED = {}
    try:
        _Summarizer(summary, text).run(tree)
    except RecursionError:
        return FileSummary(path=path, digest=summary.digest, unparsable=True)
    finally:
        _WALKED = None
    return summary


class Names:
    """Resolves a Name/Attribute chain through the file's imports and top-level names."""

    def __init__(self, imports: dict[str, str], local: set[str], aliases: dict[str, Any]) -> None:
        self.imports = imports
        self.local = local
        self.aliases = aliases
        self.has_star_imports = any(key.startswith("*") for key in imports)

    def star(self, node: ast.expr) -> str | None:
        """`*Name` for a called name this file neither defines nor imports by name,
        when the file has `from x import *` (resolved by `ProjectIndex`)."""
        if (
            self.has_star_imports
            and isinstance(node, ast.Name)
            and node.id not in _BUILTINS
            and node.id not in self.imports
            and node.id not in self.local
        ):
            return "*" + node.id
        return None

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
        self.text = text
        self.positions = Positions(text)
        # A file that freezes something somewhere: its constructors may call its freeze
        # helpers under any name (`lock(self.stem)`), so each of them is walked (BN005).
        self.freezes_somewhere = "requires_grad" in text or ".eval(" in text
        # The text's lines as the parser numbers them (None: keep every line).
        # The facts of the last constructor walked: loaders and freezes read the same.
        self._constructor: tuple[ast.AST, Json] | None = None

    def run(self, tree: ast.Module) -> None:
        if "omentum" in self.text or "OMENTUM" in self.text:
            self.summary.settings = settings_of(tree, self.positions)
        top = list(_top_level(tree.body))
        imports = self.summary.imports
        local: set[str] = set()
        for statement in top:
            if isinstance(statement, ast.ImportFrom) and any(
                alias.name == "*" for alias in statement.names
            ):
                # `from models import *`: names this file does not define may come
                # from there (`*<n>` keys, in order; see `ProjectIndex`).
                source = "." * statement.level + (statement.module or "")
                imports[f"*{sum(k.startswith('*') for k in imports)}"] = source
            if isinstance(statement, ast.Import | ast.ImportFrom):
                imports.update(_imported_names(statement))
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
                    previous = self.summary.aliases.get(target.id)
                    if isinstance(previous, str) and isinstance(value, str) and previous != value:
                        # `if gn: Norm = nn.GroupNorm / else: Norm = nn.BatchNorm2d`: which
                        # class the name holds depends on the run, so it is unknown.
                        value = {"const": "?", "alternatives": [previous, value]}
                    elif _other_string(previous, value):
                        value = {"const": "?"}  # a name set to two models: unknown
                    if value is not None:
                        self.summary.aliases[target.id] = value
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                value = _alias_value(statement.value, names) if statement.value else None
                if value is not None:
                    self.summary.aliases[statement.target.id] = value
        _drop_mutated_dicts(self.summary.aliases, tree)
        self.summary.norm_args = norm_arguments(tree, self.text, names)
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
                for name, inner, closure in self._nested(statement):
                    facts = self.function_facts(inner, names, layers, None, closure=closure)
                    if facts is not None and (facts["events"] or facts["returns"]):
                        self.summary.functions[name] = facts
        module_code = [
            s
            for s in tree.body
            if not isinstance(
                s,
                ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.Import | ast.ImportFrom,
            )
        ]
        if module_code:
            layers.params = frozenset()  # module code: every name is a module name
            facts = FunctionFacts(names, layers, self.positions).run_module(module_code)
            if facts["events"] or facts["layers"] or facts["bindings"]:
                self.summary.functions["<module>"] = facts

    def function_facts(
        self,
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        names: Names,
        layers: LayerBuilder,
        owner: str | None,
        submodules: Iterable[str] = (),
        closure: frozenset[str] = frozenset(),
    ) -> Json | None:
        """Mode facts for functions whose text can hold them; for the others (most of a
        model zoo) only the layers they return, which is all other files need. A
        method that runs one of its class's submodules (`self.img_enc(images)` in a
        helper object's `embed()`) holds a forward that a training step may reach."""
        lines = self.positions.lines[function.lineno - 1 : function.end_lineno]
        text = "\n".join(lines)
        if "import " in text:
            # Imports inside the function (`from models.resnet import get_resnet` in a
            # branch of `get_model()`) name its models too.
            inner = _local_imports(function)
            if inner:
                names = Names({**names.imports, **inner}, names.local, names.aliases)
                owned = layers.owner
                layers = LayerBuilder(names, self.positions)
                layers.owner = owned
        facts = FunctionFacts(names, layers, self.positions, owner=owner, closure=closure)
        previous = layers.reading(function)
        try:
            if any(word in text for word in _MODE_WORDS) or has_word_match(_RETURNS_TUPLE, text):
                result: Json | None = facts.run(function)
            elif (submodules := set(submodules)) and any(
                m.group(1) in submodules for m in word_matches(_SELF_CALL, text)
            ):
                result = facts.run(function)
            else:
                result = facts.run_returns(function)
        finally:
            layers.norm_params = previous
        if "{" in text and text.count("return") == 1:
            merged = returned_dict(
                function, [a.arg for a in _all_args(function)], _dict_literal, facts._callee, text
            )
            if merged is not None:
                # A config dict it builds and returns (bnlint.index.merged_dicts).
                if result is None:
                    result = facts.bare(function)
                result["returned_dict"] = merged
        if result is not None and layers.read_params:
            # What it returns depends on the name a parameter holds (bnlint.index.choices).
            result["reads_names"] = sorted(layers.read_params)
            result["defaults"] = {**_string_defaults(function), **result["defaults"]}
        if result is not None and _may_switch_to_eval(text) and _switches_to_eval(function):
            # A loader that hands back models it put in eval (`m.fuse().eval()`).
            result["sets_eval"] = True
        return result

    def _nested(
        self, function: ast.FunctionDef | ast.AsyncFunctionDef
    ) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, frozenset[str]]]:
        """`nested_functions`, walked only when the body's text defines something."""
        body = self.positions.lines[function.lineno : function.end_lineno]
        if "def " in "\n".join(body):  # one search, not one per line
            yield from nested_functions(function)

    def _text(self, node: ast.stmt) -> str:
        return "\n".join(self.positions.lines[node.lineno - 1 : node.end_lineno])

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
        # A plain object that holds models (`class VSE:` with `self.img_enc`), not a
        # module: its methods that run those models are followed (BN006); a module's
        # own helper methods stay as they were (the caller owns their mode).
        holder = not any(
            isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and member.name == "forward"
            for member in node.body
        ) and not any(
            base is not None and (base.startswith("torch.") or base.endswith("Module"))
            for base in bases
        )
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
            layers.owner = node.name
            if any(
                "norm_eval" in arg.arg or "freeze_bn" in arg.arg for arg in _all_args(statement)
            ):
                info["norm_eval"] = True
            for attr, spec in layers.self_layers(statement):
                info["layers"].setdefault(attr, spec)
            if statement.name == "__init__" and layers.read_params:
                # Layers chosen by a constructor parameter's value (`backbone="vgg"`):
                # known per instantiation (bnlint.index.choices).
                info["reads_names"] = sorted(layers.read_params)
                info["init_params"] = [a.arg for a in _all_args(statement)][1:]
                info["init_defaults"] = _string_defaults(statement)
            if statement.name == "__init__":
                init_text = self._text(statement)
                if _may_switch_to_eval(init_text) and _switches_to_eval(statement):
                    info["evals_at_init"] = True
                held = _held_modules(self._text(node), statement)
                if held:
                    info["param_layers"] = held
                    info["init_params"] = [a.arg for a in _all_args(statement)][1:]
            if statement.name == "train":
                info["train_override"] = True
                info["refreezes"] = _refreezes(statement)
            elif statement.name == "forward":
                info["forward"] = ForwardFlow(names, self.positions).run(statement)
            if statement.name == "__init__":
                self._init_loaders(statement, names, layers, node.name, info)
                _init_attributes(statement, info)
                info["init_chain"] = _init_chain(statement)
            if statement.name not in ("__init__", "forward"):
                facts = self.function_facts(
                    statement, names, layers, node.name, submodules=info["layers"] if holder else ()
                )
                if facts is not None and (facts["events"] or facts["bindings"] or facts["returns"]):
                    info["methods"][statement.name] = facts
                # A training or validation routine written as a closure inside a method
                # (`def run_epoch(): ...` in `Trainer.fit`) holds mode facts too.
                for name, inner, closure in self._nested(statement):
                    facts = self.function_facts(inner, names, layers, node.name, closure=closure)
                    if facts is not None and (facts["events"] or facts["returns"]):
                        info["methods"][name] = facts
            elif statement.name == "__init__":
                self._constructor_freezes(info, node, statement, names, layers)
            layers.owner = None
        generators = batch_generators(node, info.get("init_attrs", {}))
        if generators:
            info["batch_generators"] = generators
        if any(
            "momentum" in line for line in self.positions.lines[node.lineno - 1 : node.end_lineno]
        ):
            momentum = momentum_facts(node, names)
            if momentum is not None:
                info["momentum"] = momentum
        return info

    def _constructor_freezes(
        self,
        info: Json,
        node: ast.ClassDef,
        init: ast.FunctionDef | ast.AsyncFunctionDef,
        names: Names,
        layers: LayerBuilder,
    ) -> None:
        """What the constructor may freeze on `self` (BN005): its freeze, BN-eval and
        eval events on `self` keys and its calls that pass `self` keys or call methods
        (`_freeze_module(self.layer1)`, `self.freeze_bn()`), as `info["init"]`; and
        `info["shadowed"]`, methods that an instance attribute of the same name hides
        (`self.freeze_bn = freeze_bn`: `model.freeze_bn` is then a flag). Only
        constructors that name a freeze, in files that freeze something, are walked."""
        methods = {
            s.name for s in node.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        shadowed = sorted(
            {
                attr
                for statement in _statements(init.body)
                for attr, _ in _self_assignments(statement)
            }
            & methods
        )
        if shadowed:
            info["shadowed"] = shadowed
        text = "\n".join(self.positions.lines[init.lineno - 1 : init.end_lineno])
        if not self.freezes_somewhere and not any(word in text for word in _FREEZE_WORDS):
            return
        facts = self._constructor_facts(init, names, layers, node.name)
        events = [event for event in facts["events"] if _on_self(event)]
        if events:
            info["init"] = events

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
        facts = self._constructor_facts(function, names, layers, owner)
        loaders = {k: v for k, v in facts["loaders"].items() if k.startswith("self.")}
        if loaders:
            info["init_loaders"] = loaders

    def _constructor_facts(
        self,
        init: ast.FunctionDef | ast.AsyncFunctionDef,
        names: Names,
        layers: LayerBuilder,
        owner: str,
    ) -> Json:
        """`FunctionFacts` of a constructor, walked once for `_init_loaders` and
        `_constructor_freezes` (both read the same facts of the same `__init__`)."""
        if self._constructor is None or self._constructor[0] is not init:
            facts = FunctionFacts(names, layers, self.positions, owner=owner).run(init)
            self._constructor = (init, facts)
        return self._constructor[1]


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


def _init_chain(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Json:
    """What a constructor does with the classes passed to it, for the kind of a plain
    wrapper (`self.net = net_cls(config)` in a base `__init__`, a subclass passing its
    parameters on with `super().__init__(config, net_cls)`): `built` (attr → the
    parameter called to build it), `super` (for each positional argument of the base's
    constructor, the parameter passed there or None) and `params`. Empty when it does
    neither (the base's constructor does not run, or builds nothing passed in)."""
    params = [a.arg for a in _all_args(function)][1:]
    chain: Json = {}
    built: dict[str, str] = {}
    for statement in _statements(function.body):
        if not isinstance(statement, ast.Assign | ast.AnnAssign | ast.Expr):
            continue  # neither a `self` assignment nor a `super().__init__(...)` call
        for attr, value in _self_assignments(statement):
            if (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id in params
            ):
                built.setdefault(attr, value.func.id)
        if (
            isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Call)
            and isinstance(statement.value.func, ast.Attribute)
            and statement.value.func.attr == "__init__"
            and isinstance(statement.value.func.value, ast.Call)
            and isinstance(statement.value.func.value.func, ast.Name)
            and statement.value.func.value.func.id == "super"
            and not statement.value.keywords
        ):
            chain["super"] = [
                a.id if isinstance(a, ast.Name) and a.id in params else None
                for a in statement.value.args
            ]
    if built:
        chain["built"] = built
    if chain:
        chain["params"] = params
    return chain


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


def _local_imports(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str]:
    imports: dict[str, str] = {}
    for statement in _statements(function.body):
        if isinstance(statement, ast.Import | ast.ImportFrom):
            imports.update(_imported_names(statement))
    return imports


def _imported_names(statement: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """local name → qualified name for one import statement (`*` left out)."""
    imports: dict[str, str] = {}
    if isinstance(statement, ast.Import):
        for alias in statement.names:
            if alias.asname:
                imports[alias.asname] = alias.name
            else:
                head = alias.name.split(".")[0]
                imports[head] = head
        return imports
    source = "." * statement.level + (statement.module or "")
    for alias in statement.names:
        if alias.name == "*":
            continue
        joined = (
            f"{source}.{alias.name}" if source and not source.endswith(".") else source + alias.name
        )
        imports[alias.asname or alias.name] = joined
    return imports


def _may_switch_to_eval(text: str) -> bool:
    return ".eval()" in text or "train(False" in text or "train(mode=False" in text


def _switches_to_eval(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The function calls `.eval()` or `.train(False)` on something."""
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "eval" and not node.args and not node.keywords:
                return True
            if node.func.attr == "train" and node.args and literal(node.args[0]) is False:
                return True
    return False


def _held_modules(class_text: str, init: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str]:
    """attr → parameter for `self.features = features` in `__init__` where the class
    calls `self.features(...)`: a module the caller builds and passes in. The walk for
    the calls enters only the class's nodes on lines that name a held attribute."""
    params = {a.arg for a in _all_args(init)[1:]}
    held: dict[str, str] = {}
    for statement in init.body:
        for attr, value in _self_assignments(statement):
            if isinstance(value, ast.Name) and value.id in params and f"self.{attr}(" in class_text:
                held[attr] = value.id
    return held


# Constructor text that can freeze something (BN005): only such constructors are walked.
_FREEZE_WORDS = ("requires_grad", ".eval(", "freeze", "Freeze", "fix", ".train(False")


def _on_self(event: Json) -> bool:
    """A constructor event about the instance: a mode/freeze event on `self` or one of
    its attributes, a call of one of its methods, or a call that passes one of them."""

    def is_self(key: Any) -> bool:
        return isinstance(key, str) and (key == "self" or key.startswith("self."))

    if event["k"] in ("freeze", "bn_eval", "eval", "train", "method", "average"):
        return is_self(event.get("key"))
    if event["k"] == "call":
        passed = [*event["args"], *event["kwargs"].values()]
        return str(event["fn"]).startswith("self.") or any(is_self(key) for key in passed)
    return False


def _defaults(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[tuple[str, Any]]:
    """(parameter, literal default) for each parameter with a literal default."""
    args = function.args
    if not args.defaults and not args.kw_defaults:
        return  # most methods (`forward(self, x)`): nothing to pair
    positional = [*args.posonlyargs, *args.args]
    pairs = [
        *zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=False),
        *zip(args.kwonlyargs, args.kw_defaults, strict=False),
    ]
    for arg, default in pairs:
        if isinstance(default, ast.Constant):
            yield arg.arg, default.value


def _string_defaults(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str]:
    """The parameters whose default is a string literal (a name that may choose a model)."""
    return {name: value for name, value in _defaults(function) if isinstance(value, str)}


def _number_defaults(function: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """Parameters defaulting to a number or a flag: they never hold a model's name."""
    return frozenset(
        name for name, value in _defaults(function) if isinstance(value, bool | int | float)
    )


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


def _other_string(previous: Any, value: Any) -> bool:
    """A module-level name given a second, different string constant."""
    return (
        isinstance(previous, dict)
        and isinstance(previous.get("const"), str)
        and isinstance(value, dict)
        and previous != value
    )


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
    if isinstance(constant, str) and constant != "?" and choices.name_value(value, ()):
        # `BACKBONE = "resnet50"`: a name that chooses a model (bnlint.index.choices).
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
        # The class whose methods are being read: `self._make_stage(2)` in it is a
        # layer built by that class's own helper method.
        self.owner: str | None = None
        # Norm-like parameters of the function being read: `norm_layer(planes)` builds
        # whatever class the callers pass (`$norm_layer`, see `norm_args.py`).
        self.norm_params: frozenset[str] = frozenset()
        # Parameters of the function being read, and those of them whose value a spec
        # reads as a name that chooses a model (bnlint.index.choices).
        self.params: frozenset[str] = frozenset()
        self.read_params: set[str] = set()

    def reading(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
        """Enter `function`: its norm-like parameters; returns the previous ones."""
        previous = self.norm_params
        numbers = _number_defaults(function)
        self.params = frozenset(a.arg for a in _all_args(function) if a.arg not in numbers)
        self.read_params = set()
        self.norm_params = frozenset(
            arg.arg for arg in _all_args(function) if is_norm_parameter(arg.arg)
        )
        return previous

    def _constant(self, name: str) -> Any:
        """A module-level string constant (`BACKBONE = "resnet50"`)."""
        alias = self.names.aliases.get(name)
        return alias.get("const") if isinstance(alias, dict) else None

    def _chooser(self, node: ast.expr) -> Json | None:
        if not isinstance(node, ast.Subscript | ast.Call):
            return None  # `choices.chooser` reads only these (most assignments are neither)
        choose = choices.chooser(node, self.params, self.names.qualify, self._constant)
        if choose is not None and choices.params_read(choose["by"]):
            self.read_params.add(choose["by"]["param"])
        return choose

    def _names(self, spec: Json, node: ast.Call) -> None:
        """The name values a call passes to a project callee (a model chosen by the name
        it is given is known when the name is): `spec["names"]`, by slot."""
        found: dict[str, Any] = {}
        for position, arg in enumerate(node.args):
            if isinstance(arg, ast.Starred):
                break
            value = choices.name_value(arg, self.params, self._constant)
            if value is not None:
                found[f"#{position}"] = value
        for keyword in node.keywords:
            if keyword.arg is not None:
                value = choices.name_value(keyword.value, self.params, self._constant)
                found[keyword.arg] = "?" if value is None else value
        for value in found.values():
            if choices.params_read(value):
                self.read_params.add(value["param"])
        if found:
            spec["names"] = found

    def spec(self, node: ast.expr, env: dict[str, Json] | None = None) -> Json | None:
        env = env or {}
        if isinstance(node, ast.IfExp):
            alts = [self.spec(node.body, env), self.spec(node.orelse, env)]
            return {"call": None, "alts": [a for a in alts if a], "pos": self.positions.of(node)}
        if isinstance(node, ast.Name) and node.id in env:
            return env[node.id]
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (env.get(node.value.id) or {}).get("call")
        ):
            # `model.layer1` of a local `model = ResNet(...)`: that layer of its class.
            owner = env[node.value.id]
            return {"call": None, "attr_of": owner, "attr": node.attr, "pos": owner["pos"]}
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
        if callee is None and self.owner is not None and dotted_name(node.func) is not None:
            head, _, method = (dotted_name(node.func) or "").partition(".")
            if head == "self" and method and "." not in method:
                return {
                    "call": None,
                    "self_method": f"{self.owner}.{method}",
                    "kw": {},
                    "pos": self.positions.of(node),
                }
        if (callee or "").rsplit(".", 1)[-1] in _WRAPPERS and node.args:
            # `nn.DataParallel(resnet50())`: the wrapped model's tree.
            return self.spec(node.args[0], env)
        choose: Json | None = None
        if callee is None and isinstance(node.func, ast.Name) and node.func.id in env:
            # A local variable bound to a class: `norm = nn.BatchNorm2d; norm(c)`.
            bound = env[node.func.id]
            callee = bound.get("ref") if isinstance(bound, dict) else None
            choose = bound.get("choose") if isinstance(bound, dict) else None
        elif callee is None and isinstance(node.func, ast.Subscript | ast.Call):
            # `globals()[name](...)`, `getattr(models, arch)(...)`.
            choose = self._chooser(node.func)
        elif callee is None and dotted_name(node.func) in self.norm_params:
            callee = f"${dotted_name(node.func)}"
        elif callee is None:
            callee = self.names.star(node.func)
        spec: Json = {"call": callee, "kw": {}, "pos": self.positions.of(node)}
        if choose is not None:
            spec["choose"] = choose
        project = callee is not None and callee.lstrip("~.*").split(".")[0] not in _LIBRARY_ROOTS
        if choose is not None or project:
            self._names(spec, node)
        # Only a project callee takes class references (`_class_reference`): decided
        # once here rather than for each argument of every library layer.
        references = project and bool(callee)
        for index, arg in enumerate(node.args):
            if isinstance(arg, ast.Starred):
                spec["kw"]["*"] = True
                break
            # "?" for a computed argument: `nn.Dropout(rate)` must not read as the default.
            spec["kw"][f"#{index}"] = literal(arg)
            self._module_argument(spec, f"#{index}", arg, env)
            if references:
                self._class_reference(spec, f"#{index}", arg, env)
        for keyword in node.keywords:
            if keyword.arg is not None:
                self._module_argument(spec, keyword.arg, keyword.value, env)
                if references:
                    self._class_reference(spec, keyword.arg, keyword.value, env)
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
        width = _width_name(node)
        if width is not None:
            spec["width"] = width
        last = (callee or "").rsplit(".", 1)[-1]
        if last in ("Sequential", "ModuleList", "ModuleDict"):
            spec["items"] = self._items(node, env)
        return spec

    def _items(self, node: ast.Call, env: dict[str, Json]) -> list[Json | None]:
        items: list[Json | None] = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                bound = env.get(arg.value.id) if isinstance(arg.value, ast.Name) else None
                parts = self._children_of(arg.value, env)
                if bound is not None and "list" in bound:
                    items.extend(bound["list"])
                elif parts is not None:
                    items.append(parts)
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

    def _module_argument(self, spec: Json, slot: str, arg: ast.expr, env: dict[str, Json]) -> None:
        """Keep the layers passed to a constructor (`VGG(make_layers(cfg))`,
        `Wrapper(backbone)`): a class that holds a passed module is known per call."""
        if not isinstance(arg, ast.Call | ast.Name) or (spec["call"] or "").split(".")[0] in (
            _LIBRARY_ROOTS
        ):
            return
        inner = self.spec(arg, env)
        if inner is not None and (
            inner.get("call") or "items" in inner or "self_method" in inner or "choose" in inner
        ):
            spec.setdefault("args", {})[slot] = inner

    def _class_reference(self, spec: Json, slot: str, arg: ast.expr, env: dict[str, Json]) -> None:
        """A project name passed uncalled to a project constructor (`Wrapper(cfg,
        NetClass)`): the wrapper may build its network from it (`init_chain`)."""
        if not isinstance(arg, ast.Name) or arg.id in env:
            return
        callee = spec["call"] or ""
        if not callee or callee.lstrip("~.*").split(".")[0] in _LIBRARY_ROOTS:
            return
        qualified = self.names.qualify(arg)
        if qualified is not None and qualified.lstrip("~.*").split(".")[0] not in _LIBRARY_ROOTS:
            spec.setdefault("refs", {})[slot] = qualified

    def _children_of(self, node: ast.expr, env: dict[str, Json]) -> Json | None:
        """The model whose children `list(net.children())[:-1]` (or `net.children()`,
        `net.modules()`) lists: a Sequential rebuilt from them keeps its BatchNorm."""
        while isinstance(node, ast.Subscript):
            node = node.value
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("list", "tuple")
            and node.args
        ):
            node = node.args[0]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("children", "modules")
            and isinstance(node.func.value, ast.Name)
        ):
            bound = env.get(node.func.value.id)
            if bound is not None and "call" in bound:
                return bound
        return None

    def track(self, statement: ast.stmt, env: dict[str, Json]) -> None:
        """Update `env` (local name → spec, list of specs, or class reference)."""
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and "list" in env.get(target.value.id, {})
            ):
                # `modules["conv"] = nn.Conv2d(...)` fills an OrderedDict of layers.
                env[target.value.id]["list"].append(self.spec(value, env))
                return
            if isinstance(target, ast.Name):
                parts = self._children_of(value, env)
                choose = self._chooser(value)
                if choose is not None:
                    # `net_definition = globals()[model_name]`, called below.
                    env[target.id] = {"choose": choose}
                elif parts is not None:
                    env[target.id] = {"list": [parts]}
                elif _is_empty_mapping(value):
                    env[target.id] = {"list": []}
                elif isinstance(value, ast.List) or _listed(value) is not None:
                    # `[a, b]`, and `list([a, b])` / `tuple((a, b))` around a literal.
                    elements = _listed(value) or value.elts  # type: ignore[attr-defined]
                    env[target.id] = {"list": [self.spec(e, env) for e in elements]}
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
        """`(attr, spec)` for each `self.<attr> = <layer>` in a method, in order. A
        method that assigns nothing on `self` (a `forward`, most helpers) yields nothing,
        so its local layers are not built at all."""
        statements = list(_statements(method.body))
        if not any(_assigns_self(statement) for statement in statements):
            return
        env: dict[str, Json] = {}
        params = {arg.arg for arg in _all_args(method)}
        previous = self.reading(method)
        chains = self._name_chains(method)
        # attr -> the chain's choice: `if backbone == "vgg": self.features = ...`.
        chosen: dict[str, Json] = {}
        for statement in statements:
            if isinstance(statement, ast.Assign | ast.AugAssign | ast.Expr):
                self.track(statement, env)
            if not isinstance(statement, ast.Assign | ast.AnnAssign | ast.Expr):
                continue  # no layer set on `self` (`_self_targets` is empty)
            for attr, value, item in _self_targets(statement):
                if isinstance(value, ast.Name) and value.id in params and value.id not in env:
                    continue
                spec = self.spec(value, env)
                if spec is not None and item is not None:
                    # `self.features, self.head = build()`: the item the factory returns.
                    spec = {"call": None, "item_of": spec, "item": item, "pos": spec["pos"]}
                if spec is None:
                    continue
                case = chains.get(id(statement))
                if case is None:
                    yield attr, spec
                    continue
                choice = chosen.setdefault(attr, {"by": case[0], "cases": []})
                if choice["by"] == case[0]:
                    choice["cases"].append([case[1], spec])
        for attr, choice in chosen.items():
            yield attr, {"call": None, "choose": choice, "pos": choice["cases"][0][1]["pos"]}
        self.norm_params = previous

    def _name_chains(self, method: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[int, Any]:
        """Statements inside an if/elif chain on a name (`if backbone == "vgg": ...
        elif backbone in ("r50", "r101"): ... else: ...`), by id: (the name value
        tested, the labels of their branch, None for the `else`)."""
        found: dict[int, Any] = {}
        for statement in _statements(method.body):
            if not isinstance(statement, ast.If) or id(statement) in found:
                continue
            branch: ast.stmt = statement
            tested: Any = None
            while isinstance(branch, ast.If):
                test = _name_test(branch.test, self.params, self._constant)
                if test is None or (tested is not None and test[0] != tested):
                    break
                tested = test[0]
                for inner in _statements(branch.body):
                    found.setdefault(id(inner), (tested, test[1]))
                orelse = branch.orelse
                if len(orelse) == 1 and isinstance(orelse[0], ast.If):
                    found[id(orelse[0])] = (tested, None)  # the `elif` itself: not a layer
                    branch = orelse[0]
                    continue
                for inner in _statements(orelse):
                    found.setdefault(id(inner), (tested, None))
                break
            if tested is not None and choices.params_read(tested):
                self.read_params.add(tested["param"])
        return found


def _name_test(
    test: ast.expr, params: frozenset[str], constant: Callable[[str], Any]
) -> tuple[Any, list[str]] | None:
    """`name == "vgg"`, `"vgg" == name`, `name in ("a", "b")`: (the name value, its
    labels); None for any other test."""
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    left, right = test.left, test.comparators[0]
    if isinstance(test.ops[0], ast.Eq):
        if isinstance(left, ast.Constant):
            left, right = right, left
        labels = [right.value] if isinstance(right, ast.Constant) else []
    elif isinstance(test.ops[0], ast.In) and isinstance(right, ast.Tuple | ast.List | ast.Set):
        labels = [e.value for e in right.elts if isinstance(e, ast.Constant)]
        if len(labels) != len(right.elts):
            return None
    else:
        return None
    names = [label for label in labels if isinstance(label, str)]
    if not names or len(names) != len(labels):
        return None
    value = choices.name_value(left, params, constant)
    return None if value is None else (value, names)


def _width_name(node: ast.Call) -> str | None:
    """The variable a layer's width is written with, for a norm or a Linear: the
    name says what the output is (`BatchNorm1d(num_classes)`, `Linear(512, emb_dim)`)."""
    callee = dotted_name(node.func) or ""
    last = callee.rsplit(".", 1)[-1]
    if "Norm" in last or last in ("BN", "BatchNorm"):
        position, keyword = 0, "num_features"
    elif last.endswith("Linear"):
        position, keyword = 1, "out_features"
    else:
        return None
    value: ast.expr | None = node.args[position] if len(node.args) > position else None
    for item in node.keywords:
        if item.arg == keyword:
            value = item.value
    name = dotted_name(value) if value is not None else None
    return name.rsplit(".", 1)[-1] if name else None


def _listed(value: ast.expr) -> list[ast.expr] | None:
    """The elements of `list([a, b])` or `tuple((a, b))`; None for anything else."""
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in ("list", "tuple")
        and len(value.args) == 1
        and not value.keywords
        and isinstance(value.args[0], ast.List | ast.Tuple)
    ):
        return list(value.args[0].elts)
    return None


def _is_empty_mapping(value: ast.expr) -> bool:
    """`{}`, `dict()`, `OrderedDict()`: a mapping about to be filled with layers."""
    if isinstance(value, ast.Dict):
        return not value.keys
    return (
        isinstance(value, ast.Call)
        and not value.args
        and not value.keywords
        and (dotted_name(value.func) or "").rsplit(".", 1)[-1] in ("dict", "OrderedDict")
    )


def nested_functions(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    prefix: str | None = None,
    outer: frozenset[str] = frozenset(),
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, frozenset[str]]]:
    """Functions defined inside a function, at any depth, named by their path of
    enclosing functions (`train/_run_epoch`), with the names their enclosing functions
    bind: real training code keeps its epoch loop or validation pass in such closures,
    which read the enclosing function's model. Classes inside a function are not
    entered."""
    prefix = prefix or function.name
    closure = outer | _bound_names(function)
    for statement in _statements(function.body):
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{NESTED}{statement.name}"
            yield name, statement, closure
            yield from nested_functions(statement, name, closure)


def _bound_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """The parameters of a function and the names its own statements bind."""
    names = {arg.arg for arg in _all_args(function)}
    for statement in _statements(function.body):
        targets: list[ast.expr] = []
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign | ast.AugAssign | ast.For | ast.AsyncFor):
            targets = [statement.target]
        elif isinstance(statement, ast.With | ast.AsyncWith):
            targets = [item.optional_vars for item in statement.items if item.optional_vars]
        for target in targets:
            names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return frozenset(names)


# While a file is summarised: `_statements` of each body walked so far, by the body's
# id (the body is kept with it, so the id cannot be reused). A constructor is walked
# by its layers, its attributes, its chain, its name tests and its freezes: one walk
# instead of five. None outside `summarize_file`.
_WALKED: dict[int, tuple[list[ast.stmt], list[ast.stmt]]] | None = None


def _statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of a function body in textual order, descending into blocks."""
    if _WALKED is None or not isinstance(body, list):
        return _walk_statements(body)
    walked = _WALKED.get(id(body))
    if walked is None or walked[0] is not body:
        walked = (body, list(_walk_statements(body)))
        _WALKED[id(body)] = walked
    return iter(walked[1])


def _walk_statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    for statement in body:
        yield statement
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(statement, name, None)
            if isinstance(inner, list) and not isinstance(
                statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                yield from _walk_statements(inner)
        if isinstance(statement, ast.Try):
            for handler in statement.handlers:
                yield from _walk_statements(handler.body)


# Attributes through which a library classifier produces its output: a Sequential
# assigned there becomes the model's head (`self.backbone.fc = nn.Sequential(...)`).
CLASSIFIER_ATTRIBUTES = frozenset({"fc", "classifier", "head", "last_linear"})


def _self_targets(statement: ast.stmt) -> Iterator[tuple[str, ast.expr, int | None]]:
    """`(attr, value, item)` for each layer a statement sets on `self`: the plain forms
    of `_self_assignments` (item None), and `self.a, self.b = build()`, where each
    attribute is the item at its place in what the project factory returns."""
    if (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Tuple | ast.List)
        and isinstance(statement.value, ast.Call | ast.Tuple)
    ):
        elements = statement.targets[0].elts
        if isinstance(statement.value, ast.Tuple):
            # `self.a, self.b = A(), B()`: pairwise.
            if len(statement.value.elts) == len(elements):
                for element, value in zip(elements, statement.value.elts, strict=True):
                    if (
                        isinstance(element, ast.Attribute)
                        and isinstance(element.value, ast.Name)
                        and element.value.id == "self"
                    ):
                        yield element.attr, value, None
            return
        for position, element in enumerate(elements):
            if isinstance(element, ast.Starred):
                return
            if (
                isinstance(element, ast.Attribute)
                and isinstance(element.value, ast.Name)
                and element.value.id == "self"
            ):
                yield element.attr, statement.value, position
        return
    for attr, value in _self_assignments(statement):
        yield attr, value, None


def _assigns_self(statement: ast.stmt) -> bool:
    """`_self_targets(statement)` is not empty."""
    return isinstance(statement, ast.Assign | ast.AnnAssign | ast.Expr) and any(
        True for _ in _self_targets(statement)
    )


def _self_assignments(statement: ast.stmt) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                yield target.attr, statement.value
            elif (
                isinstance(target, ast.Attribute)
                and target.attr in CLASSIFIER_ATTRIBUTES
                and isinstance(target.value, ast.Attribute)
                and isinstance(target.value.value, ast.Name)
                and target.value.value.id == "self"
                and isinstance(statement.value, ast.Call)
                and (dotted_name(statement.value.func) or "").endswith("Sequential")
            ):
                yield f"{target.value.attr}.{target.attr}", statement.value
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
            # A computed name (`self.add_module(f"net_{k}", net)`) still adds the layer.
            yield (key if isinstance(key, str) else f"*{statement.lineno}"), call.args[1]
        elif name == "setattr" and len(call.args) == 3 and dotted_name(call.args[0]) == "self":
            key = literal(call.args[1])
            if isinstance(key, str):
                yield key, call.args[2]
