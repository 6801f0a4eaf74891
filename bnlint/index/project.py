"""The project-wide index over every file's summary: names resolved across files,
"is this a BN model" answered transitively, what a key in a function refers to, who
calls a function, and whether an `.eval()` reaches a call.

Answers are three-valued where it matters: a kind is "bn", "frozen", "none" or None
(unknown). Rules fire only on what is known.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from bnlint.index import kinds
from bnlint.index.summary import FileSummary, digest_of, summarize_file

Json = dict[str, Any]
Kind = str | None
_DEPTH = 6


def module_name(root: str, path: str) -> str:
    """`pkg.models` for `<root>/pkg/models.py` (`src/` layouts and `__init__` dropped)."""
    try:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    except ValueError:
        relative = os.path.basename(path)
    if relative.startswith(".."):
        relative = os.path.basename(path)
    stem = relative[:-3] if relative.endswith(".py") else relative
    parts = [p for p in stem.replace(os.sep, "/").split("/") if p and p != "."]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def combine(kinds_found: Sequence[Kind]) -> Kind:
    """A tree's kind from its parts: any trainable BN makes it "bn"; otherwise any
    unknown part makes it unknown."""
    if "bn" in kinds_found:
        return "bn"
    if None in kinds_found:
        return None
    if "frozen" in kinds_found:
        return "frozen"
    return "none"


class ProjectIndex:
    """Summaries of every Python file of the project, keyed by path."""

    def __init__(self, root: str, summaries: Mapping[str, FileSummary] | None = None) -> None:
        self.root = root
        self.summaries: dict[str, FileSummary] = dict(summaries or {})
        self._modules: dict[str, str] = {}
        for path in self.summaries:
            name = module_name(root, path)
            parts = name.split(".")
            for start in range(len(parts)):
                suffix = ".".join(parts[start:])
                # The full name wins; a shorter suffix is kept only while unambiguous.
                if start == 0 or suffix not in self._modules:
                    self._modules[suffix] = path
                elif (
                    self._modules[suffix] != path
                    and module_name(root, self._modules[suffix]) != suffix
                ):
                    self._modules[suffix] = ""
        self._memo: dict[tuple[Any, ...], Any] = {}
        # Entries being computed, and whether the computation under way met one of them
        # (a cycle) or a depth cut: such partial answers are not memoised, so the result
        # does not depend on which rule or file asked first.
        self._active: set[tuple[Any, ...]] = set()
        self._partial = False
        self._callers: dict[str, list[tuple[str, str, Json]]] | None = None
        self._derived: dict[tuple[str, str], tuple[ProjectIndex, FileSummary]] = {}

    # -- construction -----------------------------------------------------------------
    @classmethod
    def empty(cls, root: str = ".") -> ProjectIndex:
        return cls(root)

    @classmethod
    def from_summaries(cls, root: str, summaries: Mapping[str, FileSummary]) -> ProjectIndex:
        return cls(root, {path: s for path, s in summaries.items() if not s.is_empty})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProjectIndex) and self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __getstate__(self) -> Json:
        return {"root": self.root, "summaries": self.summaries}

    def __setstate__(self, state: Json) -> None:
        self.__init__(state["root"], state["summaries"])  # type: ignore[misc]

    def fingerprint(self) -> str:
        """Part of every cache key: findings may depend on other files through the index.
        Positions are left out, so moving code inside a file keeps other files' caches."""
        if ("fingerprint",) in self._memo:
            return str(self._memo[("fingerprint",)])
        if not self.summaries:
            return ""
        digest = hashlib.sha1()
        for path in sorted(self.summaries):
            digest.update(path.encode("utf-8", "surrogatepass"))
            digest.update(self.summaries[path].meaning().encode())
        value = digest.hexdigest()
        self._memo[("fingerprint",)] = value
        return value

    def with_file(self, path: str, text: str) -> tuple[ProjectIndex, FileSummary]:
        """This index with `path` summarised from `text` (the file being linted), and
        that summary. Reuses the index's own summary when the text is unchanged."""
        summary = self.summaries.get(path)
        if summary is not None and summary.digest == digest_of(text):
            return self, summary
        key = (path, digest_of(text))
        if key not in self._derived:
            fresh = summarize_file(path, text)
            self._derived.clear()
            if summary is None and fresh.is_empty:
                # Nothing to add (the index leaves empty summaries out): building a
                # new index would cost a copy of every summary for nothing.
                self._derived[key] = (self, fresh)
            else:
                summaries = dict(self.summaries)
                summaries[path] = fresh
                self._derived[key] = (ProjectIndex(self.root, summaries), fresh)
        return self._derived[key]

    # -- names --------------------------------------------------------------------------
    def module_of(self, path: str) -> str:
        return module_name(self.root, path)

    def canonical(self, path: str, name: str | None) -> str | None:
        """A summary name (`~Net`, `.models.Net`, `torch.nn.Conv2d`) as a project-wide
        dotted name."""
        if name is None:
            return None
        if name.startswith("~"):
            module = self.module_of(path)
            return f"{module}.{name[1:]}" if module else name[1:]
        if name.startswith("."):
            level = len(name) - len(name.lstrip("."))
            package = self.module_of(path).split(".")
            if not path.endswith("__init__.py"):
                package = package[:-1]
            base = package[: len(package) - (level - 1)] if level > 1 else package
            rest = name[level:]
            return ".".join([*base, rest]) if base else rest
        return name

    def lookup(self, path: str, name: str | None) -> tuple[str, str, str] | None:
        """Where a name is defined in the project: (path, "class"|"function"|"alias", local
        name), following re-exports (`from .resnet import ResNet` in `__init__`)."""
        qualified = self.canonical(path, name)
        for _ in range(_DEPTH):
            if qualified is None:
                return None
            module, _, local = qualified.rpartition(".")
            target = self._modules.get(module) if module else self._modules.get(local)
            if not target:
                # A bare name from a file with no package: the file itself.
                if not module and path in self.summaries:
                    target = path
                else:
                    return None
            summary = self.summaries[target]
            if local in summary.classes:
                return target, "class", local
            if local in summary.functions:
                return target, "function", local
            if local in summary.aliases and isinstance(summary.aliases[local], str):
                qualified = self.canonical(target, summary.aliases[local])
                path = target
                continue
            if local in summary.imports:
                qualified = self.canonical(target, summary.imports[local])
                path = target
                continue
            return None
        return None

    def library_name(self, path: str, name: str | None) -> str | None:
        """The name itself when it is not defined in the project (a library name)."""
        qualified = self.canonical(path, name)
        if qualified is None or self.lookup(path, name) is not None:
            return None
        return qualified

    # -- kinds ----------------------------------------------------------------------------
    def norm_kind(self, path: str, name: str | None) -> str | None:
        """ "bn" / "frozen" / "other-norm" for a normalisation class, None otherwise."""
        result: str | None = self._memoised(
            ("norm", path, name), lambda: self._norm_kind(path, name)
        )
        return result

    def _memoised(self, memo: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if memo in self._memo:
            return self._memo[memo]
        if memo in self._active:
            self._partial = True  # a cycle: unknown here, and not memoised above
            return None
        outer, self._partial = self._partial, False
        self._active.add(memo)
        try:
            result = compute()
        finally:
            self._active.discard(memo)
        if not self._partial:
            self._memo[memo] = result
        self._partial = outer or self._partial
        return result

    def _norm_kind(self, path: str, name: str | None) -> str | None:
        result = kinds.library_norm_kind(self.library_name(path, name))
        found = self.lookup(path, name)
        if found is not None and found[1] == "class":
            target, _, local = found
            info = self.summaries[target].classes[local]
            for base in info["bases"]:
                kind = self.norm_kind(target, base)
                if kind is not None:
                    result = kind
                    break
            if result == "bn" and (
                "frozen" in local.lower() or info["refreezes"] or info["norm_eval"]
            ):
                result = "frozen"
            if result is None and "frozenbatchnorm" in local.lower():
                result = "frozen"
        return result

    def spec_kind(self, path: str, spec: Json | None, depth: int = 0) -> Kind:
        """Whether the module tree a layer spec builds trains BatchNorm: "bn", "frozen"
        (only frozen BN), "none" (known to have none) or None (unknown)."""
        if depth > _DEPTH:
            self._partial = True
        if spec is None or depth > _DEPTH:
            return None
        if "alts" in spec:
            alternatives = [self.spec_kind(path, alt, depth + 1) for alt in spec["alts"]]
            return combine(alternatives) if alternatives else None
        call = spec.get("call")
        if "items" in spec:
            return combine([self.spec_kind(path, item, depth + 1) for item in spec["items"]])
        if spec.get("kw", {}).get("norm_eval") is True:
            return (
                "frozen"
                if self._call_kind(path, spec, depth) == "bn"
                else self._call_kind(path, spec, depth)
            )
        if call is None:
            return None
        return self._call_kind(path, spec, depth)

    def _call_kind(self, path: str, spec: Json, depth: int) -> Kind:
        call = spec.get("call")
        norm = self.norm_kind(path, call)
        if norm in ("bn", "frozen"):
            return norm
        if norm == "other-norm":
            return "none"
        library = self.library_name(path, call)
        if library is not None:
            factory = kinds.factory_kind(library, spec.get("arg0"))
            if factory == "bn" and "norm_layer" in spec:
                return self._norm_layer_kind(path, spec["norm_layer"])
            if factory is not None:
                return factory
            if library.rsplit(".", 1)[-1] in ("load", "load_state_dict_from_url"):
                return None  # `torch.load("model.pt")`: any model at all
            if library.startswith("torch.nn.") or (
                library.startswith("torch.") and library.count(".") == 1
            ):
                return "none"
            return None
        found = self.lookup(path, call)
        if found is None:
            return None
        target, what, local = found
        if what == "class":
            # A class's kind does not depend on how it was reached: memoised, cycles
            # guarded by the memo, so the depth count starts afresh.
            return self.class_kind(target, local)
        if what == "function":
            facts = self.summaries[target].functions[local]
            returned = [
                self._returned_kind(target, local, facts, r, depth + 1) for r in facts["returns"]
            ]
            return combine(returned) if returned else None
        return None

    def _norm_layer_kind(self, path: str, norm_layer: str) -> Kind:
        """A BN factory built with `norm_layer=...`: its norms are that layer's kind."""
        norm = self.norm_kind(path, None if norm_layer == "?" else norm_layer)
        if norm in ("bn", "frozen"):
            return norm
        return "none" if norm == "other-norm" else None

    def _returned_kind(
        self, path: str, function: str, facts: Json, returned: Json, depth: int
    ) -> Kind:
        if "spec" in returned:
            return self.spec_kind(path, returned["spec"], depth)
        return self.key_kind(path, function, returned["key"], depth)

    def class_kind(self, path: str, name: str, depth: int = 0) -> Kind:
        """Kind of a project `nn.Module` class: its layers, its bases' layers, and its
        `train()` override or `norm_eval` flag (which make its BN frozen)."""
        result: Kind = self._memoised(("class", path, name), lambda: self._class_kind(path, name))
        return result

    def _class_kind(self, path: str, name: str) -> Kind:
        info = self.summaries[path].classes[name]
        parts: list[Kind] = []
        norm = self.norm_kind(path, "~" + name)
        if norm in ("bn", "frozen"):
            parts.append(norm)
        for layer in info["layers"].values():
            parts.append(self.spec_kind(path, layer))
        for base in info["bases"]:
            found = self.lookup(path, base)
            if found is not None and found[1] == "class":
                parts.append(self.class_kind(found[0], found[2]))
            elif (
                self.library_name(path, base) not in ("torch.nn.Module", "nn.Module")
                and norm is None
            ):
                parts.append(
                    None
                    if not (self.library_name(path, base) or "").startswith("torch.nn")
                    else "none"
                )
        if info["unknown_bases"]:
            parts.append(None)
        result = combine(parts) if parts else "none"
        if result == "bn" and self.keeps_bn_frozen(path, name):
            result = "frozen"
        return result

    def keeps_bn_frozen(self, path: str, name: str) -> bool:
        """A class (or a project base) whose `train()` override re-freezes BN, or that
        takes an mmcv-style `norm_eval` flag."""
        info = self.summaries[path].classes[name]
        if info["refreezes"] or info["norm_eval"]:
            return True
        for base in info["bases"]:
            found = self.lookup(path, base)
            is_other_class = (
                found is not None and found[1] == "class" and (path, name) != found[::2]
            )
            if is_other_class and found is not None and self.keeps_bn_frozen(found[0], found[2]):
                return True
        return False

    def class_info(self, path: str, name: str) -> Json:
        return self.summaries[path].classes[name]

    def class_layers(self, path: str, name: str) -> dict[str, tuple[str, Json]]:
        """attr → (path, spec) over the class and its project base classes."""
        layers: dict[str, tuple[str, Json]] = {}
        seen: set[tuple[str, str]] = set()
        todo = [(path, name)]
        while todo:
            current = todo.pop(0)
            if current in seen:
                continue
            seen.add(current)
            info = self.summaries[current[0]].classes[current[1]]
            for attr, spec in info["layers"].items():
                layers.setdefault(attr, (current[0], spec))
            for base in info["bases"]:
                found = self.lookup(current[0], base)
                if found is not None and found[1] == "class":
                    todo.append((found[0], found[2]))
        return layers

    # -- functions and keys ----------------------------------------------------------------
    def function_facts(self, path: str, function: str) -> Json | None:
        summary = self.summaries.get(path)
        if summary is None:
            return None
        if "." in function and function != "<module>":
            owner, _, method = function.partition(".")
            info = summary.classes.get(owner)
            return None if info is None else info["methods"].get(method)
        return summary.functions.get(function)

    def functions(self, path: str) -> Iterator[tuple[str, Json]]:
        """(name, facts) of every function and method of a file (`Class.method`)."""
        summary = self.summaries.get(path)
        if summary is None:
            return
        yield from summary.functions.items()
        for owner, info in summary.classes.items():
            for method, facts in info["methods"].items():
                yield f"{owner}.{method}", facts

    def key_kind(self, path: str, function: str, key: str, depth: int = 0) -> Kind:
        """What kind of model a key names inside a function: through its bindings
        (`model = Net()`, `model = resnet50()`, `model = model.to(device)`, wrappers),
        `self.<attr>` layers of the owner class, or the values callers pass to a
        parameter."""
        if depth > _DEPTH:
            self._partial = True
            return None
        result: Kind = self._memoised(
            ("key", path, function, key), lambda: self._key_kind(path, function, key, depth)
        )
        return result

    def _key_kind(self, path: str, function: str, key: str, depth: int) -> Kind:
        facts = self.function_facts(path, function)
        if facts is None:
            return None
        bindings = facts["bindings"].get(key, [])
        kinds_found = [self._binding_kind(path, function, b, depth) for b in bindings]
        # `model, optimizer = build(cfg)`: the item `build` returns at that place.
        kinds_found += [
            self._result_kind(path, function, result, depth)
            for result in facts.get("results", {}).get(key, ())
            if result["item"] is not None
        ]
        known = [k for k in kinds_found if k is not None]
        if known:
            return combine(known)
        if key.startswith("self.") and facts.get("owner"):
            attr = key.split(".")[1]
            owner = facts["owner"]
            layers = self.class_layers(path, owner)
            if attr in layers and key.count(".") == 1:
                return self.spec_kind(layers[attr][0], layers[attr][1], depth + 1)
            return None
        _, _, rest = key.partition(".")
        if rest:
            return None
        if key in facts["params"]:
            passed = [
                self.key_kind(caller_path, caller, argument, depth + 1)
                for caller_path, caller, argument in self.arguments_for(path, function, key)
            ]
            known = [k for k in passed if k is not None]
            return combine(known) if known else None
        if function != "<module>" and key not in facts["bindings"]:
            module_facts = self.function_facts(path, "<module>")
            if module_facts is not None and key in module_facts["bindings"]:
                return self.key_kind(path, "<module>", key, depth + 1)
        return None

    def _binding_kind(self, path: str, function: str, binding: Json, depth: int) -> Kind:
        if "spec" in binding:
            return self.spec_kind(path, binding["spec"], depth + 1)
        if "alias" in binding:
            return self.key_kind(path, function, binding["alias"], depth + 1)
        if "param" in binding:
            return self.key_kind(path, function, binding["param"], depth + 1)
        if "method" in binding and binding.get("owner"):
            facts = self.function_facts(path, f"{binding['owner']}.{binding['method']}")
            if facts is not None:
                returned = [
                    self._returned_kind(
                        path, f"{binding['owner']}.{binding['method']}", facts, r, depth + 1
                    )
                    for r in facts["returns"]
                ]
                return combine(returned) if returned else None
        return None

    def _result_kind(self, path: str, function: str, result: Json, depth: int) -> Kind:
        """Kind of the item a project function returns in a tuple at `result["item"]`."""
        callee = self.resolve_function(path, function, result["fn"])
        facts = self.function_facts(*callee) if callee is not None else None
        if callee is None or facts is None:
            return None
        position = result["item"]
        kinds_found = [
            self.key_kind(*callee, items[position], depth + 1)
            for items in facts.get("returned_items", ())
            if position < len(items) and items[position] is not None
        ]
        known = [k for k in kinds_found if k is not None]
        return combine(known) if known else None

    def resolve_function(self, path: str, function: str, callee: str) -> tuple[str, str] | None:
        """The project function a call event names: (path, function name)."""
        if callee.startswith("self."):
            facts = self.function_facts(path, function)
            owner = facts.get("owner") if facts else None
            if owner is None:
                return None
            method = callee.split(".", 1)[1]
            if self.function_facts(path, f"{owner}.{method}") is not None:
                return path, f"{owner}.{method}"
            return None
        found = self.lookup(path, callee)
        if found is None or found[1] != "function":
            return None
        return found[0], found[2]

    def callers(self, path: str, function: str) -> list[tuple[str, str, Json]]:
        """(path, function, call event) for every call of `function` in the project."""
        if self._callers is None:
            table: dict[str, list[tuple[str, str, Json]]] = {}
            for caller_path in self.summaries:
                for name, facts in self.functions(caller_path):
                    for event in facts["events"]:
                        if event["k"] == "call":
                            target = self.resolve_function(caller_path, name, event["fn"])
                            if target is not None:
                                table.setdefault(f"{target[0]}::{target[1]}", []).append(
                                    (caller_path, name, event)
                                )
            self._callers = table
        return self._callers.get(f"{path}::{function}", [])

    def arguments_for(self, path: str, function: str, parameter: str) -> list[tuple[str, str, str]]:
        """(caller path, caller function, key passed) for each call passing a key to
        `parameter` of `function`."""
        facts = self.function_facts(path, function)
        if facts is None:
            return []
        params = call_parameters(facts)
        found = []
        for caller_path, caller, event in self.callers(path, function):
            key = argument_key(event, params, parameter)
            if key is not None:
                found.append((caller_path, caller, key))
        return found

    def frozen_by_call(self, path: str, function: str, event: Json, depth: int = 0) -> list[str]:
        """The caller's keys whose parameters a call to a project function freezes
        (`freeze(model.backbone)` where `freeze` sets `requires_grad` to False on its
        parameter, directly or through its own callees)."""
        callee = self.resolve_function(path, function, event["fn"])
        facts = self.function_facts(*callee) if callee is not None else None
        if callee is None or facts is None or depth > _DEPTH:
            return []
        params = call_parameters(facts)
        inner: list[str] = []
        for inner_event in facts["events"]:
            if inner_event["k"] == "freeze" and inner_event.get("key"):
                inner.append(inner_event["key"])
            elif inner_event["k"] == "call":
                inner.extend(self.frozen_by_call(*callee, inner_event, depth + 1))
        frozen: list[str] = []
        for key in inner:
            root = key.split(".")[0]
            passed = argument_key(event, params, root) if root in params else None
            if passed is not None:
                frozen.append(passed + key[len(root) :])
        return frozen

    def final_mode(self, path: str, function: str, parameter: str, depth: int = 0) -> str | None:
        """ "eval" / "train" when `function` leaves the object passed to `parameter` in
        that mode (its last mode call on it, directly or through its own callees)."""
        facts = self.function_facts(path, function)
        if facts is None or depth > _DEPTH:
            return None
        return mode_before(
            self, path, function, facts["events"], len(facts["events"]), parameter, depth + 1
        )


def call_parameters(facts: Json) -> list[str]:
    """The parameters a call fills, in order: a method's `self` is not among them."""
    params = list(facts["params"])
    if facts.get("owner") and params and params[0] == "self":
        params = params[1:]
    return params


def argument_key(event: Json, params: list[str], parameter: str) -> str | None:
    if parameter in event.get("kwargs", {}):
        return event["kwargs"][parameter]  # type: ignore[no-any-return]
    if parameter in params:
        position = params.index(parameter)
        if position < len(event["args"]):
            return event["args"][position]  # type: ignore[no-any-return]
    return None


def related(a: str, b: str) -> bool:
    """The same object, or one a submodule of the other."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def covers(ancestor: str, key: str) -> bool:
    return key == ancestor or key.startswith(ancestor + ".")


def mode_before(
    index: ProjectIndex,
    path: str,
    function: str,
    events: list[Json],
    position: int,
    key: str,
    depth: int = 0,
) -> str | None:
    """The mode the last mode-setting event before `position` leaves `key` in: "eval"
    (an `.eval()`/`.train(False)` on it, a submodule or an ancestor, or a call of a
    project function that does so), "train" (a `.train()` on it or an ancestor), or
    None when nothing in the function sets it."""
    for event in reversed(events[:position]):
        kind = event["k"]
        target = event.get("key")
        if kind == "eval" and target and related(target, key):
            return "eval"
        if kind == "train" and target and covers(target, key):
            return "train"
        if kind == "call" and depth <= _DEPTH:
            callee = index.resolve_function(path, function, event["fn"])
            if callee is None:
                continue
            facts = index.function_facts(*callee)
            if facts is None:
                continue
            params = call_parameters(facts)
            for parameter in params:
                passed = argument_key(event, params, parameter)
                if passed is not None and related(passed, key):
                    mode = index.final_mode(callee[0], callee[1], parameter, depth + 1)
                    if mode is not None:
                        return mode
            if key.startswith("self.") and event["fn"].startswith("self."):
                mode = index.final_mode(callee[0], callee[1], key, depth + 1)
                if mode is not None:
                    return mode
    return None
