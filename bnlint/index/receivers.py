"""Methods of project objects called through a name: `model.val_start()` where `model`
is a `VSE` (a plain class holding the encoders), `trainer.validate()` where `trainer`
is a project `Trainer`. (BN006)

The summary records such a call as an "opaque" event with the receiver (`recv`), the
method and its argument keys (`margs`, `mkw`). The class of the receiver is found from
what the function knows about it:

- a local binding to a project class (`model = VSE(opt)`), every binding agreeing;
- `self.<attr>` built in the owner class (`self.model = VSE(opt)` in `__init__`);
- a parameter, through the values its callers pass (every resolved caller agreeing).

The method is then looked up in that class and its project base classes. Anything
else stays unresolved (the call remains opaque).
"""

from __future__ import annotations

from typing import Any

from bnlint.index.project import ProjectIndex, argument_key, call_parameters

Json = dict[str, Any]
_DEPTH = 3


def receiver_class(
    index: ProjectIndex, path: str, function: str, key: str, depth: int = 0
) -> tuple[str, str] | None:
    """(path, class name) of the project class `key` is an instance of in `function`."""
    if depth > _DEPTH:
        return None
    facts = index.function_facts(path, function)
    if facts is None:
        return None
    if key.startswith("self.") and key.count(".") == 1 and facts.get("owner"):
        layers = index.class_layers(path, facts["owner"])
        attr = key.split(".")[1]
        if attr in layers:
            return _class_of_spec(index, *layers[attr])
        return None
    if "." in key:
        return None
    bindings = facts["bindings"].get(key, [])
    if bindings:
        found = {_class_of_binding(index, path, function, b, depth) for b in bindings}
        return found.pop() if len(found) == 1 else None
    if key in facts["params"]:
        passed = {
            receiver_class(index, caller_path, caller, argument, depth + 1)
            for caller_path, caller, argument in index.arguments_for(path, function, key)
        }
        return passed.pop() if len(passed) == 1 else None
    return None


def receiver_candidates(
    index: ProjectIndex, path: str, function: str, key: str, depth: int = 0
) -> list[tuple[str, str]] | None:
    """Every project class `key` may be an instance of in `function`, for an object
    chosen in branches (`if name == "a": model = A(cfg) elif ...: model = B(cfg)`) and
    handed on through parameters and constructors (`Trainer(model=model)` keeping it as
    `self.model`). None when one of the ways in is not a project class."""
    if depth > _DEPTH:
        return None
    facts = index.function_facts(path, function)
    if facts is None:
        return None
    sources: list[tuple[str, str, str]] = []
    if key.startswith("self.") and key.count(".") == 1 and facts.get("owner"):
        attr = key.split(".")[1]
        if attr in index.class_layers(path, facts["owner"]):
            found = receiver_class(index, path, function, key, depth)
            return [found] if found is not None else None
        sources = index.kept_arguments(path, facts["owner"], attr)
    elif "." in key:
        return None
    elif facts["bindings"].get(key):
        if facts.get("rebound", {}).get(key, 1) != len(facts["bindings"][key]):
            return None  # another assignment binds something the summary does not hold
        classes = [
            _class_of_binding(index, path, function, b, depth) for b in facts["bindings"][key]
        ]
        known = [c for c in classes if c is not None]
        return list(dict.fromkeys(known)) if len(known) == len(classes) else None
    elif key in facts["params"]:
        sources = index.arguments_for(path, function, key)
    elif function != "<module>":
        # A module-level object read by the function (`model` built at the top).
        return receiver_candidates(index, path, "<module>", key, depth + 1)
    if not sources:
        return None
    candidates: list[tuple[str, str]] = []
    for caller_path, caller, argument in sources:
        found_here = receiver_candidates(index, caller_path, caller, argument, depth + 1)
        if found_here is None:
            return None
        candidates.extend(c for c in found_here if c not in candidates)
    return candidates


def _class_of_binding(
    index: ProjectIndex, path: str, function: str, binding: Json, depth: int
) -> tuple[str, str] | None:
    if "spec" in binding:
        return _class_of_spec(index, path, binding["spec"])
    if "alias" in binding:
        return receiver_class(index, path, function, binding["alias"], depth + 1)
    return None


def _class_of_spec(index: ProjectIndex, path: str, spec: Json) -> tuple[str, str] | None:
    found = index.lookup(path, spec.get("call"))
    if found is None or found[1] != "class":
        return None
    return found[0], found[2]


def method_of(index: ProjectIndex, path: str, function: str, event: Json) -> tuple[str, str] | None:
    """The project method an opaque `recv.method(...)` event calls: (path, "Class.method")."""
    receiver, method = event.get("recv"), event.get("method")
    if not receiver or not method:
        return None
    owner = receiver_class(index, path, function, receiver)
    return None if owner is None else method_in_class(index, owner, method)


def method_in_class(
    index: ProjectIndex, owner: tuple[str, str], method: str
) -> tuple[str, str] | None:
    """`method` looked up in the class `owner` and its project bases."""
    seen: set[tuple[str, str]] = set()
    todo = [owner]
    while todo:
        current = todo.pop(0)
        if current in seen or len(seen) > 4 * _DEPTH:
            continue
        seen.add(current)
        info = index.class_info(*current)
        if method in info["methods"]:
            return current[0], f"{current[1]}.{method}"
        for base in info["bases"]:
            target = index.lookup(current[0], base)
            if target is not None and target[1] == "class":
                todo.append((target[0], target[2]))
    return None


def method_keys(
    index: ProjectIndex, callee: tuple[str, str], event: Json, key: str
) -> list[tuple[str, str, str, bool]]:
    """The keys under which the method sees the caller's `key`: `self.<rest>` for a
    part of the receiver, its parameter for an argument. (path, function, key, whole)
    as `LoopModes.callee_keys` returns them."""
    receiver = str(event["recv"])
    mapped: list[tuple[str, str, str, bool]] = []
    if key == receiver or key.startswith(receiver + "."):
        mapped.append((*callee, "self" + key[len(receiver) :], True))
    elif receiver.startswith(key + "."):
        mapped.append((*callee, "self", False))
    facts = index.function_facts(*callee)
    if facts is None:
        return mapped
    params = call_parameters(facts)
    call = {"args": event.get("margs", []), "kwargs": event.get("mkw", {})}
    for parameter in params:
        argument = argument_key(call, params, parameter)
        if argument is None:
            continue
        if key == argument or key.startswith(argument + "."):
            mapped.append((*callee, parameter + key[len(argument) :], True))
        elif argument.startswith(key + "."):
            mapped.append((*callee, parameter, False))
    return mapped


def member_kind(index: ProjectIndex, path: str, function: str, key: str) -> str | None:
    """Kind of `<object>.<attr>` where the object's project class is known (also for a
    parameter, through its callers): the kind of the layer the class builds there."""
    parts = key.split(".")
    root_length = 2 if parts[0] == "self" else 1
    if len(parts) != root_length + 1:
        return None
    owner = receiver_class(index, path, function, ".".join(parts[:root_length]))
    if owner is None:
        return None
    layers = index.class_layers(*owner)
    attr = parts[root_length]
    if attr not in layers:
        return None
    kind: str | None = index.spec_kind(*layers[attr])
    return kind
