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

from bnlint.index import choices, kinds
from bnlint.index.summary import NESTED, FileSummary, digest_of, summarize_file

Json = dict[str, Any]
Kind = str | None
# The names a scope's parameters hold (bnlint.index.choices); None: scope not known.
Given = Mapping[str, Any] | None
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
        self._module_names: dict[str, str] = {}
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
        # Partial answers of the outermost query under way, by (entry, depth): reused
        # within that query only (so a chain cut by the depth bound is walked once per
        # depth, not once per path to it), forgotten when it returns.
        self._partial_memo: dict[tuple[Any, ...], Any] = {}
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
        """Memoised: name lookups ask it tens of thousands of times per run, and each
        `module_name` makes the path relative (7 s of a profiled timm run)."""
        found = self._module_names.get(path)
        if found is None:
            found = self._module_names[path] = module_name(self.root, path)
        return found

    def canonical(self, path: str, name: str | None) -> str | None:
        """A summary name (`~Net`, `.models.Net`, `torch.nn.Conv2d`) as a project-wide
        dotted name."""
        if name is None:
            return None
        if name.startswith("*"):
            return self._star_name(path, name[1:])
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
            starred = self._star_name(target, local)
            if starred is not None:
                qualified, path = starred, target
                continue
            return None
        return None

    def _star_name(self, path: str, name: str) -> str | None:
        """The project-wide name of `name` in a file that has `from x import *`: the
        last starred module defining it; the library's name when the one starred
        module is not in the project; None when unknown."""
        summary = self.summaries.get(path)
        if summary is None:
            return None
        stars = _star_sources(summary)
        if not stars:
            return None
        memo = ("star", path, name)
        if memo in self._memo:
            return self._memo[memo]  # type: ignore[no-any-return]
        if memo in self._active:
            return None  # modules that star-import each other
        self._active.add(memo)
        try:
            result: str | None = None
            for source in reversed(stars):
                candidate = f"{source}.{name}" if not source.endswith(".") else source + name
                if self.lookup(path, candidate) is not None:
                    result = self.canonical(path, candidate)
                    break
            else:
                module = self.canonical(path, stars[0])
                if len(stars) == 1 and module is not None and module not in self._modules:
                    result = f"{module}.{name}"
        finally:
            self._active.discard(memo)
        self._memo[memo] = result
        return result

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

    def _memoised(self, memo: tuple[Any, ...], compute: Callable[[], Any], depth: int = 0) -> Any:
        """`compute()`, memoised when complete. A partial answer (met a cycle or the
        depth cut) is kept only for the rest of the outermost query, keyed by depth: each
        (entry, depth) is computed at most once per query, so a query costs
        O(entries * _DEPTH) however many paths lead to an entry (without it, a chain of
        helpers deeper than _DEPTH was walked calls ** _DEPTH times)."""
        if memo in self._memo:
            return self._memo[memo]
        if memo in self._active:
            self._partial = True  # a cycle: unknown here, and not memoised above
            return None
        if (*memo, depth) in self._partial_memo:
            self._partial = True
            return self._partial_memo[(*memo, depth)]
        outermost = not self._active
        outer, self._partial = self._partial, False
        self._active.add(memo)
        try:
            result = compute()
        finally:
            self._active.discard(memo)
            if outermost:
                self._partial_memo.clear()
        if not self._partial:
            self._memo[memo] = result
        elif not outermost:
            self._partial_memo[(*memo, depth)] = result
        self._partial = outer or self._partial
        return result

    def _norm_kind(self, path: str, name: str | None) -> str | None:
        if name is not None and name.startswith("$"):
            return self.norm_argument_kind(name[1:])
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

    def norm_argument_kind(self, parameter: str) -> str | None:
        """What a norm-like parameter (`norm_layer`) builds, over every value the
        project passes to it or defaults it to: "bn" / "frozen" / "other-norm" when all
        agree, None when they disagree, one is unknown, or there is none."""
        memo = ("norm-argument", parameter)
        if memo not in self._memo:
            found: set[str | None] = set()
            for path, summary in self.summaries.items():
                for value in summary.norm_args.get(parameter, ()):
                    found.add(None if value == "?" else self.norm_kind(path, value))
            if found:
                # A norm class passed by position somewhere may land in this parameter.
                for path, summary in self.summaries.items():
                    for value in summary.norm_args.get("#positional", ()):
                        found.add(None if value == "?" else self.norm_kind(path, value))
            self._memo[memo] = found.pop() if len(found) == 1 else None
        result: str | None = self._memo[memo]
        return result

    def spec_kind(self, path: str, spec: Json | None, depth: int = 0, given: Given = None) -> Kind:
        """Whether the module tree a layer spec builds trains BatchNorm: "bn", "frozen"
        (only frozen BN), "none" (known to have none) or None (unknown). `given`: the
        names the enclosing scope's parameters hold (bnlint.index.choices), None when
        the scope is not known."""
        if depth > _DEPTH:
            self._partial = True
        if spec is None or depth > _DEPTH:
            return None
        if "alts" in spec:
            alternatives = [self.spec_kind(path, alt, depth + 1, given) for alt in spec["alts"]]
            return combine(alternatives) if alternatives else None
        call = spec.get("call")
        if "items" in spec:
            return combine([self.spec_kind(path, item, depth + 1, given) for item in spec["items"]])
        if "self_method" in spec:
            return self._self_method_kind(path, spec["self_method"], depth)
        if "attr_of" in spec:
            return self._attribute_kind(path, spec["attr_of"], spec["attr"], depth)
        if "item_of" in spec:
            return self._item_kind(path, spec["item_of"], spec["item"], depth)
        if "choose" in spec:
            return self._chosen_kind(path, spec, depth, given)
        if spec.get("kw", {}).get("norm_eval") is True:
            kind = self._call_kind(path, spec, depth, given)
            return "frozen" if kind == "bn" else kind
        if call is None:
            return None
        return self._call_kind(path, spec, depth, given)

    def _chosen_kind(self, path: str, spec: Json, depth: int, given: Given) -> Kind:
        """A model chosen by name (`globals()[name](...)`, `{"a": A}[name](...)`): the
        candidate the name picks when it is known, else the kind every candidate of a
        table agrees on."""
        choose = spec["choose"]
        name = choices.resolve(self, path, choose["by"], given)
        if "cases" in choose:
            # An if/elif chain on the name: the branch it takes, or all of them.
            cases = choose["cases"]
            if name != "?":
                taken = [c for labels, c in cases if labels is not None and name in labels]
                taken = taken or [c for labels, c in cases if labels is None]
                return self.spec_kind(path, taken[0], depth + 1, given) if taken else None
            return choices.every([self.spec_kind(path, c, depth + 1, given) for _, c in cases])
        if name != "?":
            callee = choices.candidate(self, path, choose, name)
            if callee is None:
                return None
            return self._call_kind(path, {**spec, "call": callee, "choose": None}, depth, given)
        among = choices.candidates(choose)
        if not among:
            return None
        return choices.every(
            [
                self._call_kind(path, {**spec, "call": c, "choose": None}, depth, given)
                for c in among
            ]
        )

    def _call_kind(self, path: str, spec: Json, depth: int, given: Given = None) -> Kind:
        call = spec.get("call")
        norm = self.norm_kind(path, call)
        if norm in ("bn", "frozen"):
            return norm
        if norm == "other-norm":
            return "none"
        if call is not None and call.endswith(".load_from_checkpoint"):
            # Lightning's `LitModel.load_from_checkpoint(path)` builds a `LitModel`.
            owner = self.lookup(path, call.rsplit(".", 1)[0])
            if owner is not None and owner[1] == "class":
                return self.class_kind(owner[0], owner[2])
        library = self.library_name(path, call)
        family = kinds.segmentation_family_kind(self.canonical(path, call), spec.get("kw", {}))
        if library is not None:
            factory = kinds.factory_kind(library, spec.get("arg0")) or family
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
            # A class's kind does not depend on how it was reached (but for the names
            # passed to a constructor that chooses its layers by name): memoised, cycles
            # guarded by the memo, so the depth count starts afresh. A vendored copy
            # of a known library family (`import smp` of a project folder) is that
            # family when its own code is beyond the index (registries, branches).
            info = self.summaries[target].classes[local]
            if info.get("reads_names"):
                values = choices.call_values(
                    self, path, spec, given, info["init_params"], info.get("init_defaults", {})
                )
                kind = self._class_kind_given(target, local, values)
            else:
                kind = self.class_kind(target, local)
            if kind is None and family is not None:
                return family
            if kind != "bn" and spec.get("refs") and self._builds_passed_class(target, local, spec):
                return "bn"
            if kind == "bn" or "param_layers" not in info:
                return kind
            return self._held_kind(path, target, local, spec, depth, given)
        if what == "function":
            if family is not None:
                return family
            facts = self.summaries[target].functions[local]
            if facts.get("reads_names"):
                values = choices.call_values(
                    self, path, spec, given, call_parameters(facts), facts["defaults"]
                )
                chosen: Kind = self._memoised(
                    ("returns-given", target, local, choices.frozen(values)),
                    lambda: self._returns_kind(target, local, values),
                )
                return chosen
            # Like a class, what a factory returns does not depend on how it was reached.
            returned: Kind = self._memoised(
                ("returns", target, local), lambda: self._returns_kind(target, local)
            )
            return returned
        return None

    def _returns_kind(self, path: str, function: str, given: Given = None) -> Kind:
        facts = self.summaries[path].functions[function]
        returned = [
            self._returned_kind(path, function, facts, r, 1, given) for r in facts["returns"]
        ]
        return combine(returned) if returned else None

    def _builds_passed_class(self, path: str, name: str, spec: Json) -> bool:
        """An instance of a plain wrapper that builds its network from a class passed
        at this instantiation (`Wrapper(cfg, NetClass)`, `self.net = net_cls(cfg)` in the
        wrapper's or a base's constructor, parameters handed on by `super().__init__`)
        where that class has trainable BatchNorm."""
        refs: dict[str, str] = spec["refs"]
        current: tuple[str, str] | None = (path, name)
        passed: dict[str, str] | None = None  # parameter of the current class → ref
        for _ in range(_DEPTH + 1):
            if current is None:
                return False
            info = self.summaries[current[0]].classes[current[1]]
            chain = info.get("init_chain")
            if chain is None:
                # No constructor of its own: the first project base's runs, as called.
                bases = [self.lookup(current[0], b) for b in info["bases"]]
                found = [b for b in bases if b is not None and b[1] == "class"]
                current = (found[0][0], found[0][2]) if len(found) == 1 else None
                continue
            params: list[str] = chain.get("params", [])
            if passed is None:
                passed = {
                    p: refs.get(p) or refs.get(f"#{i}", "")
                    for i, p in enumerate(params)
                    if refs.get(p) or refs.get(f"#{i}")
                }
            for param in chain.get("built", {}).values():
                target = self.lookup(current[0], passed.get(param)) if param in passed else None
                if (
                    target is not None
                    and target[1] == "class"
                    and self.class_kind(target[0], target[2]) == "bn"
                ):
                    return True
            if "super" not in chain:
                return False
            passed = {
                base_param: passed[own]
                for base_param, own in zip(
                    self._base_init_params(current), chain["super"], strict=False
                )
                if own is not None and own in passed
            }
            bases = [self.lookup(current[0], b) for b in info["bases"]]
            found = [b for b in bases if b is not None and b[1] == "class"]
            current = (found[0][0], found[0][2]) if len(found) == 1 else None
        return False

    def _base_init_params(self, current: tuple[str, str]) -> list[str]:
        """The constructor parameters of the single project base of a class."""
        info = self.summaries[current[0]].classes[current[1]]
        bases = [self.lookup(current[0], b) for b in info["bases"]]
        found = [b for b in bases if b is not None and b[1] == "class"]
        if len(found) != 1:
            return []
        chain = self.summaries[found[0][0]].classes[found[0][2]].get("init_chain") or {}
        params: list[str] = chain.get("params", [])
        return params

    def _held_kind(
        self, path: str, target: str, name: str, spec: Json, depth: int, given: Given = None
    ) -> Kind:
        """An instance of a class that holds modules passed to its constructor
        (`self.features = features`): its own layers and the modules passed here."""
        info = self.summaries[target].classes[name]
        params = info.get("init_params", [])
        passed = spec.get("args", {})
        parts: list[Kind] = [self._class_kind(target, name, with_held=False)]
        for param in info["param_layers"].values():
            slot = f"#{params.index(param)}" if param in params else None
            argument = passed.get(param) or (passed.get(slot) if slot else None)
            parts.append(self.spec_kind(path, argument, depth + 1, given))
        return combine(parts)

    def _self_method_kind(self, path: str, method: str, depth: int) -> Kind:
        """The layers a class's own helper method returns (`self._make_stage(2)`),
        looked up in the class and its project bases."""
        owner, _, name = method.partition(".")
        todo, seen = [(path, owner)], set()
        while todo:
            current = todo.pop(0)
            if current in seen or current[1] not in self.summaries[current[0]].classes:
                continue
            seen.add(current)
            facts = self.function_facts(current[0], f"{current[1]}.{name}")
            if facts is not None:
                function = f"{current[1]}.{name}"
                returned = [
                    self._returned_kind(current[0], function, facts, r, depth + 1)
                    for r in facts["returns"]
                ]
                return combine(returned) if returned else None
            for base in self.class_info(*current)["bases"]:
                found = self.lookup(current[0], base)
                if found is not None and found[1] == "class":
                    todo.append((found[0], found[2]))
        return None

    def _attribute_kind(self, path: str, owner: Json, attr: str, depth: int) -> Kind:
        """A layer taken from an instance of a project class (`model.layer1` of
        `model = ResNet(...)`): that layer of the class, or unknown."""
        found = self.lookup(path, owner.get("call"))
        if found is None or found[1] != "class":
            return None
        layers = self.class_layers(found[0], found[2])
        if attr not in layers:
            return None
        return self.spec_kind(layers[attr][0], layers[attr][1], depth + 1)

    def _item_kind(self, path: str, spec: Json, position: int, depth: int) -> Kind:
        """The item at `position` of the tuple a project factory returns
        (`self.features, self.head = build()`): the kind of the key it returns there."""
        found = self.lookup(path, spec.get("call"))
        if found is None or found[1] != "function":
            return None
        facts = self.function_facts(found[0], found[2])
        if facts is None:
            return None
        kinds_found = [
            self.key_kind(found[0], found[2], items[position], depth + 1)
            for items in facts.get("returned_items", ())
            if position < len(items) and items[position] is not None
        ]
        known = [k for k in kinds_found if k is not None]
        return combine(known) if known and len(known) == len(kinds_found) else None

    def _norm_layer_kind(self, path: str, norm_layer: str) -> Kind:
        """A BN factory built with `norm_layer=...`: its norms are that layer's kind."""
        norm = self.norm_kind(path, None if norm_layer == "?" else norm_layer)
        if norm in ("bn", "frozen"):
            return norm
        return "none" if norm == "other-norm" else None

    def _returned_kind(
        self,
        path: str,
        function: str,
        facts: Json,
        returned: Json,
        depth: int,
        given: Given = None,
    ) -> Kind:
        if "spec" in returned:
            return self.spec_kind(path, returned["spec"], depth, given)
        if given is not None:
            # `model = globals()[name](...); return model`: the bindings, with the names.
            bound = [b["spec"] for b in facts["bindings"].get(returned["key"], []) if "spec" in b]
            if bound:
                return combine([self.spec_kind(path, b, depth, given) for b in bound])
        return self.key_kind(path, function, returned["key"], depth)

    def class_kind(self, path: str, name: str, depth: int = 0) -> Kind:
        """Kind of a project `nn.Module` class: its layers, its bases' layers, and its
        `train()` override or `norm_eval` flag (which make its BN frozen). A class that
        chooses layers by a constructor parameter's name is taken with its defaults."""
        info = self.summaries[path].classes[name]
        if info.get("reads_names"):
            return self._class_kind_given(path, name, dict(info.get("init_defaults", {})))
        result: Kind = self._memoised(("class", path, name), lambda: self._class_kind(path, name))
        return result

    def _class_kind_given(self, path: str, name: str, given: dict[str, Any]) -> Kind:
        """The kind of an instance built with these names for its constructor's
        parameters (bnlint.index.choices)."""
        result: Kind = self._memoised(
            ("class-given", path, name, choices.frozen(given)),
            lambda: self._class_kind(path, name, given=given),
        )
        return result

    def _class_kind(
        self, path: str, name: str, with_held: bool = True, given: Given = None
    ) -> Kind:
        info = self.summaries[path].classes[name]
        parts: list[Kind] = []
        norm = self.norm_kind(path, "~" + name)
        if norm in ("bn", "frozen"):
            parts.append(norm)
        for layer in info["layers"].values():
            parts.append(self.spec_kind(path, layer, 0, given))
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
        if with_held and info.get("param_layers"):
            parts.append(None)  # modules passed in: known per instantiation only
        result = combine(parts) if parts else "none"
        if result == "bn" and self.keeps_bn_frozen(path, name):
            result = "frozen"
        return result

    def keeps_bn_frozen(self, path: str, name: str) -> bool:
        """A class (or a project base) whose `train()` override re-freezes BN, or that
        takes an mmcv-style `norm_eval` flag. O(classes in its hierarchy): each base is
        visited once, so bases that resolve to each other end the walk."""
        seen: set[tuple[str, str]] = set()
        todo = [(path, name)]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            info = self.summaries[current[0]].classes[current[1]]
            if info["refreezes"] or info["norm_eval"]:
                return True
            for base in info["bases"]:
                found = self.lookup(current[0], base)
                if found is not None and found[1] == "class":
                    todo.append((found[0], found[2]))
        return False

    def class_info(self, path: str, name: str) -> Json:
        return self.summaries[path].classes[name]

    def class_layers(self, path: str, name: str) -> dict[str, tuple[str, Json]]:
        """attr → (path, spec) over the class and its project base classes; each class
        of the hierarchy visited once."""
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
            ("key", path, function, key),
            lambda: self._key_kind(path, function, key, depth),
            depth,
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
        enclosing = enclosing_function(function)
        root = key.split(".")[0]
        if enclosing is not None and root not in facts["params"] and root not in facts["bindings"]:
            # A closure reads the enclosing function's name (`model` in `train/_epoch`).
            return self.key_kind(path, enclosing, key, depth + 1)
        if key.startswith("self.") and facts.get("owner"):
            attr = key.split(".")[1]
            owner = facts["owner"]
            layers = self.class_layers(path, owner)
            if attr in layers and key.count(".") == 1:
                return self.spec_kind(layers[attr][0], layers[attr][1], depth + 1)
            if key.count(".") == 1:
                # A constructor parameter kept on `self`: what the instantiations pass.
                passed = [
                    self.key_kind(caller_path, caller, argument, depth + 1)
                    for caller_path, caller, argument in self.kept_arguments(path, owner, attr)
                ]
                known = [k for k in passed if k is not None]
                return combine(known) if known else None
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
        if NESTED not in callee and "." not in callee:
            # A call of a function defined inside the caller or one of its enclosers.
            scope: str | None = function
            while scope is not None:
                if self.function_facts(path, f"{scope}{NESTED}{callee}") is not None:
                    return path, f"{scope}{NESTED}{callee}"
                scope = enclosing_function(scope)
        found = self.lookup(path, callee)
        if found is None and "." in callee:
            # `solver.Solver.train`: a method called on an instance of a project class.
            owner, _, method = callee.rpartition(".")
            cls = self.lookup(path, owner)
            if (
                cls is not None
                and cls[1] == "class"
                and self.function_facts(cls[0], f"{cls[2]}.{method}") is not None
            ):
                return cls[0], f"{cls[2]}.{method}"
            return None
        if found is None or found[1] != "function":
            return None
        return found[0], found[2]

    def callers(self, path: str, function: str) -> list[tuple[str, str, Json]]:
        """(path, function, call event) for every call of `function` in the project. The
        table is built once per index: O(call events of the project * _DEPTH) (each call
        resolved through at most _DEPTH re-exports)."""
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

    def constructions(self, path: str, name: str) -> list[tuple[str, str, Json]]:
        """(path, function, call event) for every instantiation of the project class
        `name` (`Trainer(model=model, ...)`). Built once per index, like `callers`."""

        def table() -> dict[tuple[str, str], list[tuple[str, str, Json]]]:
            found: dict[tuple[str, str], list[tuple[str, str, Json]]] = {}
            for caller_path in self.summaries:
                for caller, facts in self.functions(caller_path):
                    for event in facts["events"]:
                        if event["k"] != "call":
                            continue
                        target = self.lookup(caller_path, event["fn"])
                        if target is not None and target[1] == "class":
                            found.setdefault((target[0], target[2]), []).append(
                                (caller_path, caller, event)
                            )
            return found

        sites: dict[tuple[str, str], list[tuple[str, str, Json]]] = self._memoised(
            ("constructions",), table
        )
        return sites.get((path, name), [])

    def kept_arguments(self, path: str, owner: str, attr: str) -> list[tuple[str, str, str]]:
        """(caller path, caller function, key passed) at each instantiation of `owner`
        for the constructor parameter the class keeps as `self.<attr>`
        (`self.model = model`). Empty when one instantiation passes no key there."""
        info = self.summaries[path].classes.get(owner, {})
        kept = [p for p, a in info.get("init_attrs", {}).items() if a == attr]
        if len(kept) != 1:
            return []
        params = info.get("init_params", [])
        found = []
        for caller_path, caller, event in self.constructions(path, owner):
            key = argument_key(event, params, kept[0])
            if key is None:
                return []
            found.append((caller_path, caller, key))
        return found

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
        frozen: list[str] = []
        for key in self._frozen_inside(callee[0], callee[1], facts, depth):
            root = key.split(".")[0]
            passed = argument_key(event, params, root) if root in params else None
            if passed is not None:
                frozen.append(passed + key[len(root) :])
        return frozen

    def _frozen_inside(self, path: str, function: str, facts: Json, depth: int) -> tuple[str, ...]:
        """The keys of `function` it freezes, directly or through callees at most
        `_DEPTH - depth` calls deep. Memoised per (function, depth): without it a chain
        of helpers that each call several others was walked once per path through the
        call graph (calls ** _DEPTH, minutes on fastestimator); with it the pass is
        O(_DEPTH * events of the project)."""
        memo = ("frozen-inside", path, function, depth)
        if memo not in self._memo:
            inner: dict[str, None] = {}
            for inner_event in facts["events"]:
                if inner_event["k"] == "freeze" and inner_event.get("key"):
                    inner[inner_event["key"]] = None
                elif inner_event["k"] == "call":
                    inner.update(
                        dict.fromkeys(self.frozen_by_call(path, function, inner_event, depth + 1))
                    )
            self._memo[memo] = tuple(inner)
        found: tuple[str, ...] = self._memo[memo]
        return found

    def final_mode(self, path: str, function: str, parameter: str, depth: int = 0) -> str | None:
        """ "eval" / "train" when `function` leaves the object passed to `parameter` in
        that mode (its last mode call on it, directly or through its own callees).
        Memoised per (function, parameter, depth), so a helper called from many places
        is scanned once per depth: O(_DEPTH * events) per parameter, not calls ** _DEPTH."""
        facts = self.function_facts(path, function)
        if facts is None or depth > _DEPTH:
            return None
        memo = ("final-mode", path, function, parameter, depth)
        if memo not in self._memo:
            self._memo[memo] = mode_before(
                self, path, function, facts["events"], len(facts["events"]), parameter, depth + 1
            )
        mode: str | None = self._memo[memo]
        return mode


def _star_sources(summary: FileSummary) -> list[str]:
    """The modules a file star-imports, in order."""
    sources: list[str] = []
    while f"*{len(sources)}" in summary.imports:
        sources.append(summary.imports[f"*{len(sources)}"])
    return sources


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


def enclosing_function(function: str) -> str | None:
    """The function a nested function is defined in (`train` for `train/_epoch`,
    `Trainer.fit` for `Trainer.fit/_epoch`), None for any other."""
    outer, separator, _ = function.rpartition(NESTED)
    return outer if separator else None


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
            root = key.split(".")[0]
            if (
                enclosing_function(callee[1]) is not None
                and root not in params
                and root not in facts["bindings"]
            ):
                # A nested function that sets the mode of its encloser's model.
                mode = index.final_mode(callee[0], callee[1], key, depth + 1)
                if mode is not None:
                    return mode
    return None
