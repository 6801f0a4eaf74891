"""Training steps taken by another object: `trainer = Trainer(model, optimizer)` before
the loop, `trainer.train_step(images, targets)` inside it.

Many projects keep the optimisation step in a small helper class built from the model
(`FasterRCNNTrainer(net, optimizer)`, `Solver(model)`): the loop never calls the model
or `backward()` itself, the helper's method does both. Such a loop trains the model
when the method (or a method of the same class it calls on `self`) calls `backward()`,
and the models it trains are the constructor arguments the class keeps on `self`
(`self.model = model`). An argument the class itself puts in eval or freezes anywhere
(`self.teacher.eval()`) is not counted: its BatchNorm is not known to train. Only a
receiver bound in the same function to the class (`trainer = Trainer(...)`) is followed;
anything else stays unknown.
"""

from __future__ import annotations

from typing import Any

from bnlint.index import receivers
from bnlint.index.project import ProjectIndex, argument_key

Json = dict[str, Any]
_DEPTH = 2


def stepped_models(
    index: ProjectIndex, path: str, function: str, facts: Json, loop: Json
) -> list[str]:
    """The keys of `function` whose models a helper object's training step in `loop`
    trains (empty when the loop takes no such step)."""
    found: list[str] = []
    for event in facts["events"][loop["first"] : loop["last"]]:
        if event["k"] != "opaque" or not event.get("recv") or "." in str(event["recv"]):
            continue
        method = receivers.method_of(index, path, function, event)
        if method is None or not _calls_backward(index, method[0], method[1], 0):
            continue
        for key in _held_arguments(index, path, facts, str(event["recv"]), method):
            if key not in found:
                found.append(key)
    return found


def _calls_backward(index: ProjectIndex, path: str, method: str, depth: int) -> bool:
    """`method` calls `backward()`, itself or through a method of its class it calls
    on `self` (at most `_DEPTH` deep). Memoised per (method, depth)."""
    result: bool = index._memoised(
        ("steps", path, method, depth), lambda: _compute_calls_backward(index, path, method, depth)
    )
    return result


def _compute_calls_backward(index: ProjectIndex, path: str, method: str, depth: int) -> bool:
    facts = index.function_facts(path, method)
    if facts is None:
        return False
    if any(event["k"] == "backward" for event in facts["events"]):
        return True
    if depth >= _DEPTH:
        return False
    for event in facts["events"]:
        if event["k"] == "call" and str(event.get("fn", "")).startswith("self."):
            callee = index.resolve_function(path, method, event["fn"])
            if callee is not None and _calls_backward(index, callee[0], callee[1], depth + 1):
                return True
    return False


def _held_arguments(
    index: ProjectIndex, path: str, facts: Json, receiver: str, method: tuple[str, str]
) -> list[str]:
    """The caller's keys passed to the receiver's constructor for parameters the class
    keeps on `self` and never puts in eval or freezes itself."""
    owner = method[1].split(".", 1)[0]
    info = index.class_info(method[0], owner)
    kept: dict[str, str] = info.get("init_attrs", {})
    params: list[str] = info.get("init_params", [])
    if not kept:
        return []
    positions = [
        binding["spec"]["pos"]
        for binding in facts["bindings"].get(receiver, [])
        if "spec" in binding and index.lookup(path, binding["spec"].get("call")) is not None
    ]
    constructors = [
        event for event in facts["events"] if event["k"] == "call" and event["pos"] in positions
    ]
    if len(constructors) != 1 or len(positions) != 1:
        return []
    held = []
    for parameter, attr in kept.items():
        argument = argument_key(constructors[0], params, parameter)
        if argument is not None and not _settled_by_class(info, attr):
            held.append(argument)
    return held


def _settled_by_class(info: Json, attr: str) -> bool:
    """The class itself puts `self.<attr>` (or a part of it) in eval or freezes it."""
    own = f"self.{attr}"
    return any(
        event["k"] in ("eval", "bn_eval", "freeze")
        and isinstance(event.get("key"), str)
        and (event["key"] == own or event["key"].startswith(own + "."))
        for events in (
            info.get("init", []),
            *(facts["events"] for facts in info["methods"].values()),
        )
        for event in events
    )
