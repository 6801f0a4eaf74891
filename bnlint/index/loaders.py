"""Where a DataLoader goes: the loops that draw from it and the batch size it gets.

Real training code rarely iterates a loader where it is built. It returns loaders from
factories (`train_loader, val_loader = make_loaders(cfg)`), keeps them in dicts
(`loaders["train"]`, `{split: DataLoader(...) for split in splits}`), on `self`, in
module globals read by a `train()` function, passes them to training functions, and
wraps them (`tqdm`, `enumerate`, `iter` + `next`). This module follows a loader key
through those hops, each one read from the summaries (no guessing: a hop that cannot
be read ends the trail), and finds the batch size a loader gets from argparse options
declared in another file or parameter defaults.

Collection keys: `loaders[train]` is the item "train" of the dict `loaders`,
`loaders[]` an item whose name is not a literal (a comprehension, `loaders[phase]`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.index import merged_dicts
from bnlint.index.project import ProjectIndex, argument_key, call_parameters
from bnlint.index.steppers import stepped_models

Json = dict[str, Any]
Place = tuple[str, str, Json, str]  # path, function, facts, the loader's key there

_MAX_HOPS = 4


def split_key(key: str) -> tuple[str, str]:
    """`loaders[train]` → (`loaders`, `[train]`); `train_loader` → (`train_loader`, "")."""
    base, bracket, rest = key.partition("[")
    return base, bracket + rest


def display_name(key: str, function: str) -> str:
    """How a message names a loader key: `loaders["train"]`, `loaders[...]`, or the
    loader a factory returns."""
    base, item = split_key(key)
    if base.startswith("<return"):
        base = f"{function.rsplit('.', 1)[-1]}(...)"
        if not item:
            return f"`{base}`"
    if item == "[]":
        return f"`{base}[...]`"
    if item:
        return f"`{base}[{item[1:-1]!r}]`"
    return f"`{key}`"


def iterates(iterated: str | None, key: str) -> bool:
    """A loop over `iterated` draws from the loader `key`: the same key, or an item of
    the same collection whose name one side does not know (`loaders[phase]`)."""
    if iterated is None:
        return False
    if iterated == key:
        return True
    base, item = split_key(key)
    other_base, other_item = split_key(iterated)
    if not item or not other_item or base != other_base:
        return False
    return item == "[]" or other_item == "[]"


def loader_places(
    index: ProjectIndex, path: str, function: str, facts: Json, key: str
) -> Iterator[Place]:
    """Every (path, function, facts, key) where the loader made at `key` is available:
    here, in project functions it is passed to, in callers it is returned to, in the
    functions of this file that read a module-level loader, and in the methods of a
    class that keeps it on `self`. Each place is visited once."""
    seen: set[tuple[str, str, str]] = set()
    todo: list[tuple[Place, int]] = [((path, function, facts, key), 0)]
    while todo:
        place, hops = todo.pop()
        marker = (place[0], place[1], place[3])
        if marker in seen:
            continue
        seen.add(marker)
        yield place
        if hops < _MAX_HOPS:
            todo.extend((found, hops + 1) for found in _next_places(index, *place))


def _next_places(
    index: ProjectIndex, path: str, function: str, facts: Json, key: str
) -> Iterator[Place]:
    base, item = split_key(key)
    # Passed to a project function: `train(model, train_loader)`, `train(loaders)`.
    for event in facts["events"]:
        if event["k"] != "call":
            continue
        passed = [k for k in (*event["args"], *event["kwargs"].values()) if k in (key, base)]
        if not passed:
            continue
        callee = index.resolve_function(path, function, event["fn"])
        if callee is None:
            yield from _constructor_places(index, path, event, key)
            continue
        callee_facts = index.function_facts(*callee)
        if callee_facts is None:
            continue
        params = call_parameters(callee_facts)
        for parameter in params:
            argument = argument_key(event, params, parameter)
            if argument == key:
                yield (*callee, callee_facts, parameter)
            elif argument == base and item:
                yield (*callee, callee_facts, parameter + item)
    # Returned to callers: `train_loader, val_loader = make_loaders(cfg)`.
    returned = facts.get("loader_returns", {})
    if base in returned:
        position = returned[base]
        for caller_path, caller, event in index.callers(path, function):
            caller_facts = index.function_facts(caller_path, caller)
            if caller_facts is None:
                continue
            for bound, results in caller_facts.get("results", {}).items():
                if {"fn": event["fn"], "item": position} in results:
                    yield caller_path, caller, caller_facts, bound + item
                elif position is not None and {"fn": event["fn"], "item": None} in results:
                    # `loaders = make_loaders(cfg)` of `return [train, val]`: `loaders[0]`.
                    yield caller_path, caller, caller_facts, f"{bound}[{position}]{item}"
    # Bound by name to an item of it: `train_loader = self.gen_set[0][0]`.
    for name, aliased in facts.get("item_aliases", {}).items():
        if key == aliased or key.startswith(aliased + "["):
            yield path, function, facts, name + key[len(aliased) :]
    # A module-level loader read by the file's functions (`def train(): for b in loader`).
    if function == "<module>":
        for other, other_facts in index.functions(path):
            if other != "<module>" and not _binds(other_facts, base):
                yield path, other, other_facts, key
    # A loader kept on `self`, iterated by the class's other methods.
    owner = facts.get("owner")
    if key.startswith("self.") and owner:
        for other, other_facts in index.functions(path):
            if other.startswith(owner + ".") and other != function:
                yield path, other, other_facts, key


def _constructor_places(index: ProjectIndex, path: str, event: Json, key: str) -> Iterator[Place]:
    """`Trainer(model, train_loader)` whose constructor keeps the loader on `self`: the
    methods of the class, with the loader as `self.<attr>`."""
    found = index.lookup(path, event["fn"])
    if found is None or found[1] != "class":
        return
    info = index.class_info(found[0], found[2])
    params = info.get("init_params", [])
    base, item = split_key(key)
    for parameter, attr in info.get("init_attrs", {}).items():
        argument = argument_key(event, params, parameter)
        if argument == key:
            inner = f"self.{attr}"
        elif argument == base and item:
            inner = f"self.{attr}{item}"
        else:
            continue
        for method, facts in index.functions(found[0]):
            if method.startswith(found[2] + "."):
                yield found[0], method, facts, inner


def _binds(facts: Json, name: str) -> bool:
    return name in facts["params"] or name in facts["bindings"] or name in facts.get("results", {})


def file_loaders(index: ProjectIndex, path: str) -> Iterator[tuple[str, Json, str, Json]]:
    """(function, facts, key, loader) for every DataLoader made in `path`: in its
    functions and script code, and kept on `self` by a constructor (whose stand-in facts
    name only the class, enough for `loader_places` to reach its methods)."""
    for function, facts in index.functions(path):
        for key, loader in facts["loaders"].items():
            yield function, facts, key, loader
    summary = index.summaries.get(path)
    if summary is None:
        return
    for owner, info in summary.classes.items():
        for key, loader in info.get("init_loaders", {}).items():
            init: Json = {
                "events": [],
                "params": [],
                "bindings": {},
                "loops": [],
                "owner": owner,
                "defaults": {},
            }
            yield f"{owner}.__init__", init, key, loader


def training_loops(
    index: ProjectIndex, path: str, function: str, facts: Json, key: str
) -> Iterator[tuple[str, str, Json, Json]]:
    """Loops that call `backward()` while drawing batches from the loader `key` (made in
    `function`), wherever the loader reaches. Yields (path, function, facts, loop)."""
    for place_path, place_function, place_facts, place_key in loader_places(
        index, path, function, facts, key
    ):
        for loop in place_facts["loops"]:
            if not loop["backward"] and not stepped_models(
                index, place_path, place_function, place_facts, loop
            ):
                continue
            if iterates(loop["iter"], place_key) or any(
                iterates(drawn, place_key) for drawn in loop.get("draws", ())
            ):
                yield place_path, place_function, place_facts, loop


def argparse_default(
    index: ProjectIndex, path: str, option: str
) -> tuple[Any, str, list[int]] | None:
    """The default of the argparse option `option` (its dest) with where it is declared:
    this file's parser first, otherwise the project's, when every parser of the project
    that declares it agrees on the default. None when no parser declares it."""
    found = _declared(index, path, option)
    if not found:
        found = [
            declared
            for other, declarations in _project_options(index).get(option, {}).items()
            if other != path
            for declared in declarations
        ]
    if not found:
        return None
    values = {repr(value) for value, _, _ in found}
    if len(values) != 1:
        return "?", found[0][1], found[0][2]
    return found[0]


def _project_options(index: ProjectIndex) -> dict[str, dict[str, list[tuple[Any, str, list[int]]]]]:
    """option → path → its declarations, over the whole project, computed once."""

    def compute() -> dict[str, dict[str, list[tuple[Any, str, list[int]]]]]:
        table: dict[str, dict[str, list[tuple[Any, str, list[int]]]]] = {}
        for path in index.summaries:
            for _, facts in index.functions(path):
                for option, default in facts.get("argparse", {}).items():
                    where = facts.get("argparse_at", {}).get(option, facts["pos"])
                    table.setdefault(option, {}).setdefault(path, []).append((default, path, where))
        return table

    result: dict[str, dict[str, list[tuple[Any, str, list[int]]]]] = index._memoised(
        ("argparse options",), compute
    )
    return result


def _declared(index: ProjectIndex, path: str, option: str) -> list[tuple[Any, str, list[int]]]:
    found = []
    for _, facts in index.functions(path):
        if option in facts.get("argparse", {}):
            where = facts.get("argparse_at", {}).get(option, facts["pos"])
            found.append((facts["argparse"][option], path, where))
    return found


def parameter_batch_size(
    index: ProjectIndex,
    path: str,
    function: str,
    facts: Json,
    parameter: str,
    keys: tuple[str, ...] = (),
    depth: int = 0,
) -> Any:
    """The batch size a loader reads from `parameter` (or from its item `keys`, as in
    `config["train_batch_size"]`): what every caller passes (an integer literal, a
    dict literal holding it, an argparse option, the default when it passes nothing,
    or the caller's own parameter or an item of it, followed through its callers in
    turn), or the default when nothing calls the function. "?" when callers disagree
    or pass something else."""

    def compute() -> Any:
        default = item_of(facts["defaults"].get(parameter, "?"), keys)
        callers = index.callers(path, function)
        if not callers:
            return default
        params = call_parameters(facts)
        sizes = [
            _passed_size(index, caller_path, caller, event, params, parameter, keys, default, depth)
            for caller_path, caller, event in callers
        ]
        first = sizes[0]
        same = all(type(size) is type(first) and size == first for size in sizes)
        if (
            same
            and isinstance(first, merged_dicts.ConfigValue)
            and any(size.origin != first.origin for size in sizes)
        ):
            # Callers passing configs that write the value in different places.
            return int(first)
        return first if same else "?"

    return index._memoised(("parameter batch", path, function, parameter, keys), compute, depth)


def item_of(value: Any, keys: tuple[str, ...]) -> Any:
    """`value[k1][k2]...` of a dict literal's entries; "?" when it cannot be read."""
    for key in keys:
        if not isinstance(value, dict):
            return "?"
        value = value.get(key, "?")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return "?" if keys else value


def _passed_size(
    index: ProjectIndex,
    path: str,
    caller: str,
    event: Json,
    params: list[str],
    parameter: str,
    keys: tuple[str, ...],
    default: Any,
    depth: int,
) -> Any:
    values = event.get("values", {})
    position = params.index(parameter) if parameter in params else -1
    passed_value = values.get(parameter, values.get(str(position)))
    if passed_value is not None:
        return _resolve_passed(index, path, caller, passed_value, keys, depth)
    passed = argument_key(event, params, parameter)
    in_call = parameter in event["kwargs"] or 0 <= position < len(event["args"])
    if not in_call:
        return default
    if passed is not None and passed.count(".") == 1 and not keys:
        # `make_loader(ds, args.batch_size)`: an argparse option of the project.
        declared = argparse_default(index, path, passed.split(".")[1])
        if declared is not None:
            return declared[0]
    return "?"


def _resolve_passed(
    index: ProjectIndex, path: str, caller: str, value: Any, keys: tuple[str, ...], depth: int
) -> Any:
    """The batch size at `keys` of what a caller passes (see `FunctionFacts._passed_value`)."""
    if isinstance(value, dict) and "dict" in value:
        return item_of(value["dict"], keys)
    if isinstance(value, dict) and "param" in value:
        facts = index.function_facts(path, caller)
        if facts is None or depth >= _MAX_HOPS:
            return "?"
        inner = (*value.get("keys", ()), *keys)
        return parameter_batch_size(index, path, caller, facts, value["param"], inner, depth + 1)
    if isinstance(value, dict) and "returned" in value:
        return returned_item(index, path, caller, value["returned"], (*value["keys"], *keys))
    return value if not keys else "?"


def returned_item(
    index: ProjectIndex, path: str, function: str, callee: str, keys: tuple[str, ...]
) -> Any:
    """The integer at `keys` of the config dict the project function `callee` (called
    in `function`) builds and returns (bnlint.index.merged_dicts); "?" otherwise."""
    found = _MergeReader(index, path, function).returned(callee)
    return "?" if found is None else merged_dicts.item(found[0], keys, found[1])


class _MergeReader:
    """Reads a merge's parts from the function that recorded it."""

    def __init__(self, index: ProjectIndex, path: str, function: str) -> None:
        self.index, self.path, self.function = index, path, function

    def returned(self, callee: str) -> tuple[list[Json], merged_dicts.Reader] | None:
        target = self.index.resolve_function(self.path, self.function, callee)
        facts = self.index.function_facts(*target) if target is not None else None
        if target is None or facts is None or "returned_dict" not in facts:
            return None
        return facts["returned_dict"], _MergeReader(self.index, *target)

    def scope(self) -> tuple[str, str]:
        return self.path, self.function

    def file_dict(self, where: Json, attr: str) -> tuple[dict[str, Any], str] | None:
        """The module dict `attr` of a project file loaded by path: a literal path, or
        a parameter every caller gives the same path (an argparse default included)."""
        location = where.get("const")
        if "param" in where:
            facts = self.index.function_facts(self.path, self.function)
            if facts is None:
                return None
            location = parameter_batch_size(
                self.index, self.path, self.function, facts, where["param"]
            )
        if not isinstance(location, str) or location == "?" or not location.endswith(".py"):
            return None
        target = merged_dicts.project_file(self.index.root, list(self.index.summaries), location)
        alias = self.index.summaries[target].aliases.get(attr) if target is not None else None
        entries = alias.get("dict") if isinstance(alias, dict) else None
        return (entries, str(target)) if isinstance(entries, dict) else None


def generator_batch(index: ProjectIndex, path: str, generator: Json) -> Any:
    """The batch size of `Cls(...).method()` when `method` is a batching generator of
    the project class `Cls` (bnlint.index.batch_generators): the value the call passes
    for the constructor's batch-size parameter, else its default; "?" otherwise."""
    found = index.lookup(path, generator["cls"])
    if found is None or found[1] != "class":
        return "?"
    info = index.class_info(found[0], found[2])
    entry = info.get("batch_generators", {}).get(generator["method"])
    if entry is None:
        return "?"
    param = entry["param"]
    passed = generator["passed"]
    params = info.get("init_params", [])
    if param in passed:
        return passed[param]
    slot = f"#{params.index(param)}" if param in params else None
    if slot is not None and slot in passed:
        return passed[slot]
    return entry.get("default", "?")
