"""Freezes that outlive the statement that made them (BN005): what a class's
constructor freezes on the instance (`_freeze_module(self.layer1)`,
`self.freeze_bn()`, `self.backbone.requires_grad_(False)`), what a model's own freeze
method (`net.freeze_bn()`) or a project helper (`freeze_bn(model)`) freezes, and which
project classes a key is an instance of, so that a `.train()` far from the freeze can
be checked against it.

A freeze is `params` (`requires_grad=False`: weights fixed, BN statistics still move
in training mode) or `eval` (BN put in eval: fixed until the next ancestor `.train()`).
Keys are relative to the instance (`self`, `self.bn1`) for class freezes and to the
caller for helper calls. Unknown stays unknown: a class that cannot be resolved
contributes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bnlint.index.project import ProjectIndex, argument_key, call_parameters

Json = dict[str, Any]
_DEPTH = 6


@dataclass(frozen=True)
class Freeze:
    """`key` frozen (`how`: "params" or "eval") at `pos` of `path`."""

    key: str
    how: str
    path: str
    pos: tuple[int, ...]

    @property
    def line(self) -> int:
        return self.pos[0]


def _how(event: Json) -> str | None:
    """The freeze an event makes on its own key, if any."""
    kind = event["k"]
    if kind == "freeze":
        return "params"
    if kind == "bn_eval":
        return "eval"
    if kind == "eval" and "." in (event.get("key") or ""):
        # `self.backbone.eval()`, `model.backbone.eval()`: a part kept in eval. A whole
        # model's `eval()` is evaluation, not a freeze.
        return "eval"
    return None


def _rebase(key: str, root: str, onto: str) -> str | None:
    """`self.layer1` rebased from `self` onto `model` → `model.layer1`."""
    if key == root:
        return onto
    if key.startswith(root + "."):
        return onto + key[len(root) :]
    return None


def helper_freezes(
    index: ProjectIndex, path: str, function: str, event: Json, depth: int = 0
) -> list[tuple[str, str]]:
    """(caller key, how) for what a call of a project function freezes through its
    parameters: `freeze(model.backbone)` whose body sets `requires_grad` to False or puts
    BN in eval on its parameter, directly or through its own callees."""
    callee = index.resolve_function(path, function, event["fn"])
    if callee is None or depth > _DEPTH:
        return []
    facts = index.function_facts(*callee)
    if facts is None:
        return []
    memo = ("helper-freezes-inside", *callee, depth)
    inner: list[tuple[str, str]] = index._memoised(
        memo, lambda: _freezes_inside(index, callee, facts, depth), depth
    )
    params = call_parameters(facts)
    frozen: list[tuple[str, str]] = []
    for key, how in inner:
        root = key.split(".")[0]
        passed = argument_key(event, params, root) if root in params else None
        rebased = None if passed is None else passed + key[len(root) :]
        if rebased is not None and how == "part-eval":
            how = "eval" if "." in rebased else ""
        if rebased is not None and how:
            frozen.append((rebased, how))
    return frozen


def _freezes_inside(
    index: ProjectIndex, callee: tuple[str, str], facts: Json, depth: int
) -> list[tuple[str, str]]:
    """What `callee` freezes in its own names, directly or through callees at most
    `_DEPTH - depth` calls deep. Memoised per (callee, depth) by `helper_freezes`: walked
    afresh for every call site, a chain of helpers that each call several others cost
    calls ** _DEPTH (minutes on fastestimator); memoised, O(_DEPTH * events of the
    project)."""
    inner: list[tuple[str, str]] = []
    for inner_event in facts["events"]:
        how = _how(inner_event)
        if inner_event["k"] == "eval" and inner_event.get("key") in facts["params"]:
            how = "part-eval"  # `set_eval(model.backbone)`: a freeze when a part is passed
        if how is not None and inner_event.get("key"):
            inner.append((inner_event["key"], how))
        elif inner_event["k"] == "call":
            inner.extend(helper_freezes(index, *callee, inner_event, depth + 1))
    return inner


def class_chain(index: ProjectIndex, path: str, name: str) -> list[tuple[str, str]]:
    """The class and its project base classes, nearest first."""
    chain: list[tuple[str, str]] = []
    todo = [(path, name)]
    while todo and len(chain) < 16:
        current = todo.pop(0)
        if current in chain:
            continue
        chain.append(current)
        for base in index.class_info(*current)["bases"]:
            found = index.lookup(current[0], base)
            if found is not None and found[1] == "class":
                todo.append((found[0], found[2]))
    return chain


def method_freezes(
    index: ProjectIndex, path: str, name: str, method: str, depth: int = 0
) -> list[tuple[str, str, tuple[int, ...]]] | None:
    """(key relative to `self`, how, position) for what a method of the class (or of a
    project base) freezes on the instance; None when no such method is known or an
    instance attribute shadows it (`self.freeze_bn = freeze_bn` makes it a flag)."""
    if depth > _DEPTH:
        return None
    memo = ("method-freezes", path, name, method, depth)
    found: list[tuple[str, str, tuple[int, ...]]] | None = index._memoised(
        memo, lambda: _method_freezes(index, path, name, method, depth), depth
    )
    return found


def _method_freezes(
    index: ProjectIndex, path: str, name: str, method: str, depth: int
) -> list[tuple[str, str, tuple[int, ...]]] | None:
    for owner_path, owner in class_chain(index, path, name):
        info = index.class_info(owner_path, owner)
        if method in info.get("shadowed", ()):
            return None
        facts = info["methods"].get(method)
        if facts is not None:
            return _self_freezes(
                index, owner_path, f"{owner}.{method}", (path, name), facts["events"], depth
            )
    return None


def _self_freezes(
    index: ProjectIndex,
    path: str,
    function: str,
    instance: tuple[str, str],
    events: list[Json],
    depth: int,
) -> list[tuple[str, str, tuple[int, ...]]]:
    """Freezes on `self` among `events` of `function` (in `path`), with `self.<method>()`
    dispatched on the instance's class `instance` (path, name)."""
    found: list[tuple[str, str, tuple[int, ...]]] = []
    for event in events:
        key = event.get("key")
        how = _how(event)
        pos = tuple(event["pos"])
        if how is not None and key is not None and (key == "self" or key.startswith("self.")):
            found.append((key, how, pos))
        elif event["k"] == "call" and str(event["fn"]).startswith("self."):
            method = str(event["fn"]).split(".", 1)[1]
            inner = method_freezes(index, *instance, method, depth + 1) or []
            found.extend((key, how, pos) for key, how, _ in inner)
        elif event["k"] == "call":
            found.extend(
                (key, how, pos)
                for key, how in helper_freezes(index, path, function, event, depth + 1)
                if key == "self" or key.startswith("self.")
            )
    return found


def constructor_freezes(index: ProjectIndex, path: str, name: str) -> list[Freeze]:
    """What constructing the class freezes on the instance: its own constructor's and its
    project bases' (`super().__init__()`), keys relative to `self`."""
    memo = ("constructor-freezes", path, name)
    result: list[Freeze] = index._memoised(memo, lambda: _constructor_freezes(index, path, name))
    return result or []


def _constructor_freezes(index: ProjectIndex, path: str, name: str) -> list[Freeze]:
    freezes: list[Freeze] = []
    for owner_path, owner in class_chain(index, path, name):
        events = index.class_info(owner_path, owner).get("init", [])
        for key, how, pos in _self_freezes(index, owner_path, owner, (path, name), events, 0):
            freezes.append(Freeze(key, how, owner_path, pos))
    return freezes


def key_classes(
    index: ProjectIndex, path: str, function: str, key: str, depth: int = 0
) -> frozenset[tuple[str, str]]:
    """The project classes (path, name) that `key` may be an instance of inside
    `function`: through its bindings (`model = Net()`, a factory that returns one, an
    alias, a wrapper), a `self.<attr>` layer, the values callers pass to a parameter,
    or a module-level binding. Empty when unknown."""
    if depth > _DEPTH:
        return frozenset()
    memo = ("key-classes", path, function, key)
    result: frozenset[tuple[str, str]] | None = index._memoised(
        memo, lambda: _key_classes(index, path, function, key, depth)
    )
    return result or frozenset()


def _key_classes(
    index: ProjectIndex, path: str, function: str, key: str, depth: int
) -> frozenset[tuple[str, str]]:
    facts = index.function_facts(path, function)
    if facts is None:
        return frozenset()
    found: set[tuple[str, str]] = set()
    for binding in facts["bindings"].get(key, []):
        if "spec" in binding:
            found |= spec_classes(index, path, binding["spec"], depth + 1)
        elif "alias" in binding and binding["alias"] != key:
            found |= key_classes(index, path, function, binding["alias"], depth + 1)
        elif "param" in binding and binding["param"] != key:
            found |= key_classes(index, path, function, binding["param"], depth + 1)
    if found:
        return frozenset(found)
    if key.startswith("self.") and key.count(".") == 1 and facts.get("owner"):
        layers = index.class_layers(path, facts["owner"])
        attr = key.split(".")[1]
        if attr in layers:
            return spec_classes(index, layers[attr][0], layers[attr][1], depth + 1)
        return frozenset()
    if "." in key:
        return frozenset()
    if key in facts["params"]:
        for caller_path, caller, argument in index.arguments_for(path, function, key):
            found |= key_classes(index, caller_path, caller, argument, depth + 1)
        return frozenset(found)
    if function != "<module>":
        module_facts = index.function_facts(path, "<module>")
        if module_facts is not None and key in module_facts["bindings"]:
            return key_classes(index, path, "<module>", key, depth + 1)
    return frozenset()


def spec_classes(
    index: ProjectIndex, path: str, spec: Json | None, depth: int = 0
) -> frozenset[tuple[str, str]]:
    """The project classes a layer spec instantiates: the class called, or what a project
    factory function returns."""
    if spec is None or depth > _DEPTH:
        return frozenset()
    if "alts" in spec:
        found: set[tuple[str, str]] = set()
        for alternative in spec["alts"]:
            found |= spec_classes(index, path, alternative, depth + 1)
        return frozenset(found)
    located = index.lookup(path, spec.get("call"))
    if located is None:
        return frozenset()
    target, what, local = located
    if what == "class":
        return frozenset({(target, local)})
    if what != "function":
        return frozenset()
    facts = index.summaries[target].functions[local]
    returned: set[tuple[str, str]] = set()
    for value in facts["returns"]:
        if "spec" in value:
            returned |= spec_classes(index, target, value["spec"], depth + 1)
        else:
            returned |= key_classes(index, target, local, value["key"], depth + 1)
    return frozenset(returned)


def instance_part_kind(index: ProjectIndex, path: str, name: str, key: str) -> str | None:
    """Kind of `self` or `self.<attr>` of an instance of the class: the class's own kind
    ("frozen" when its `train()` override re-freezes BN), or its layer's kind."""
    if key == "self":
        return index.class_kind(path, name)
    parts = key.split(".")
    if len(parts) != 2:
        return None
    layers = index.class_layers(path, name)
    if parts[1] not in layers:
        return None
    return index.spec_kind(*layers[parts[1]])


def averaged_parts(index: ProjectIndex, path: str, name: str) -> frozenset[str]:
    """`self` keys whose parameters a moving average writes (a momentum encoder, an EMA
    teacher) in the class's constructor or methods, or its project bases'."""
    found: set[str] = set()
    for owner_path, owner in class_chain(index, path, name):
        info = index.class_info(owner_path, owner)
        events = [
            *info.get("init", ()),
            *(e for m in info["methods"].values() for e in m["events"]),
        ]
        found.update(str(e["key"]) for e in events if e["k"] == "average" and e.get("key"))
    return frozenset(found)


def averaged_keys(index: ProjectIndex, path: str, function: str) -> frozenset[str]:
    """Keys of the function whose parameters a moving average writes: here, or in a
    project function they are passed to (`update_teacher(student, teacher)`)."""
    facts = index.function_facts(path, function)
    if facts is None:
        return frozenset()
    found = {str(e["key"]) for e in facts["events"] if e["k"] == "average" and e.get("key")}
    for event in facts["events"]:
        if event["k"] != "call":
            continue
        callee = index.resolve_function(path, function, event["fn"])
        callee_facts = index.function_facts(*callee) if callee is not None else None
        if callee_facts is None:
            continue
        params = call_parameters(callee_facts)
        for inner in callee_facts["events"]:
            root = str(inner.get("key") or "").split(".")[0]
            if inner["k"] == "average" and root in params:
                passed = argument_key(event, params, root)
                if passed is not None:
                    found.add(passed + str(inner["key"])[len(root) :])
    return frozenset(found)
