"""Training steps taken by another object: `trainer = Trainer(model, optimizer)` before
the loop, `trainer.train_step(images, targets)` inside it.

Many projects keep the optimisation step in a small helper class built from the model
(`FasterRCNNTrainer(net, optimizer)`, `Solver(model)`): the loop never calls the model
or `backward()` itself, the helper's method does both. Such a loop trains the model
when the method (or a method of the same class it calls on `self`) calls `backward()`,
and the models it trains are the constructor arguments the class keeps on `self`
(`self.model = model`). An argument the class itself puts in eval or freezes anywhere
(`self.teacher.eval()`) is not counted: its BatchNorm is not known to train. A
receiver bound in the same function to the class (`trainer = Trainer(...)`) is followed,
and so is an object a plain trainer keeps from its constructor (`self.model.step(x)`
where every class the object may be has a `step` that calls `backward()`: the object,
a wrapper that builds its network, is what trains); anything else stays unknown.
"""

from __future__ import annotations

from typing import Any

from bnlint.index import receivers
from bnlint.index.project import ProjectIndex, argument_key, call_parameters

Json = dict[str, Any]
_DEPTH = 2


def stepped_models(
    index: ProjectIndex, path: str, function: str, facts: Json, loop: Json
) -> list[str]:
    """The keys of `function` whose models a helper object's training step in `loop`
    trains (empty when the loop takes no such step)."""
    found: list[str] = []
    for event in facts["events"][loop["first"] : loop["last"]]:
        if event["k"] != "opaque" or not event.get("recv"):
            continue
        receiver = str(event["recv"])
        if receiver.startswith("self.") and receiver.count(".") == 1:
            if receiver not in found and _held_object_steps(index, path, function, event):
                found.append(receiver)
            continue
        if "." in receiver:
            continue
        method = receivers.method_of(index, path, function, event)
        if method is None or not _calls_backward(index, method[0], method[1], 0):
            continue
        for key in _held_arguments(index, path, facts, str(event["recv"]), method):
            if key not in found:
                found.append(key)
    return found


def _held_object_steps(index: ProjectIndex, path: str, function: str, event: Json) -> bool:
    """`self.model.step(batch)` in a plain trainer that keeps the object it was given:
    every project class the object may be (each branch of the script that builds it,
    bnlint.index.receivers) has that method, and it calls `backward()`. The object
    itself is then what the loop trains; its kind is the network it builds
    (`ProjectIndex.key_kind` of `self.model`)."""
    classes = receivers.receiver_candidates(index, path, function, str(event["recv"]))
    if not classes:
        return False
    for owner in classes:
        method = receivers.method_in_class(index, owner, str(event.get("method")))
        if method is None or not _steps_when_called(index, method, event):
            return False
    return True


def _steps_when_called(index: ProjectIndex, method: tuple[str, str], event: Json) -> bool:
    """The method calls `backward()` for this call: a `backward()` of its own outside
    any phase test the call's string arguments rule out (`step(x, "test")` of a step
    that trains only under `if phase == "train":`), or one of its class's methods it
    calls on `self` does."""
    facts = index.function_facts(*method)
    if facts is None:
        return False
    own = [e for e in facts["events"] if e["k"] == "backward"]
    if not own:
        return _calls_backward(index, method[0], method[1], 0)
    params = call_parameters(facts)
    strings: dict[str, str] = event.get("mstr", {})
    passed = {
        parameter: strings[slot]
        for position, parameter in enumerate(params)
        for slot in (f"#{position}", parameter)
        if slot in strings
    }
    return any(all(_holds(guard, passed) for guard in e.get("when", ())) for e in own)


def _holds(guard: Json, passed: dict[str, str]) -> bool:
    """A phase test may hold for a call that passes `passed` (unknown ones may)."""
    value = passed.get(guard["param"])
    if value is None:
        return True
    return value in guard["is"] if "is" in guard else value not in guard["not"]


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
