"""Does an `.eval()` made inside a training loop come back around the loop to the next
`backward()` with no `.train()` in between? (BN006)

The question is asked per function over its mode facts (`functions.py`): the events in
textual order and the blocks (loops and `if` branches) that structure them. A small
data flow runs over each outermost loop for one model key at a time. Its state is the
set of modes the model may be in: *train*, or *eval* tagged with the event that set it
and whether that eval has since gone around the back edge of a loop that contains it.

- `.train()` (also `.train(flag)`, a call bnlint cannot follow that receives the model,
  or a project helper that ends with `.train()`) puts the model back into training
  mode. Inside one branch of an `if` it still counts on both sides: when the author
  restores the mode on some path, the rule trusts it.
- `.eval()`/`.train(False)` on the model or an ancestor, or a project helper that
  leaves its argument in eval (a `validate(model)` that never restores the mode),
  replaces *train* by *eval*.
- A training point is a `backward()` preceded in its loop by a forward of the model,
  or a call of a project function that runs such a step before setting any mode
  (`train_one_epoch(model, ...)` without `model.train()` at its top).
- `break`, `return` and `raise` end a path (the loop is over); `continue` goes to the
  head of the loop.

A leak is an eval that reaches a training point only after going around a loop's back
edge, in a loop where the same model also trains at some training point. A model in
eval at every training point (a frozen teacher, a backbone kept in eval on purpose, a
GAN generator switched per step) never leaks; neither does an eval that is undone
within the same iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bnlint.index.modes import is_eval_function, part_kind
from bnlint.index.project import (
    ProjectIndex,
    argument_key,
    call_parameters,
    covers,
    mode_before,
    related,
)
from bnlint.index.receivers import member_kind, method_keys, method_of

Json = dict[str, Any]
_DEPTH = 4
# A state token: TRAIN, or (origin event index, wrapped). The origin -1 stands for an
# eval made before the loop (never reported).
_TRAIN = (-2, False)
Token = tuple[int, bool]
State = frozenset[Token]
_EMPTY: State = frozenset()


@dataclass(frozen=True)
class EvalSource:
    """Where a project helper puts the model into eval: (path, function, event)."""

    path: str
    function: str
    event: Json = field(hash=False, compare=False)


@dataclass(frozen=True)
class Leak:
    """`key` is put into eval by `origin` (an "eval" event, or a "call" event of a
    helper that leaves it in eval, see `source`) and the eval reaches `training` (a
    "backward" event or a "call" event that trains) around the back edge of `loop`,
    the innermost loop that holds both."""

    key: str
    origin: Json = field(hash=False, compare=False)
    source: EvalSource | None
    training: Json = field(hash=False, compare=False)
    loop: Json = field(hash=False, compare=False)
    origin_index: int
    # Every training point the eval reaches, in event order: (its event index, its
    # position, the position of the innermost loop holding it and the origin);
    # `training` and `loop` describe the first.
    reached: tuple[tuple[int, list[int], list[int]], ...] = field(hash=False, compare=False)


@dataclass
class _Block:
    kind: str
    first: int
    last: int
    mid: int
    loop: int | None
    children: list[_Block] = field(default_factory=list)
    # The body runs at least once (`for m in [encoder, decoder]:`).
    runs: bool = False


def _block_tree(facts: Json) -> list[_Block]:
    """The top-level blocks of a function, each with its nested blocks."""
    roots: list[_Block] = []
    stack: list[_Block] = []
    for raw in facts.get("blocks", []):
        block = _Block(
            raw["k"],
            raw["first"],
            raw["last"],
            raw.get("mid", raw["last"]),
            raw.get("loop"),
            runs=bool(raw.get("runs")),
        )
        while stack and not (stack[-1].first <= block.first and block.last <= stack[-1].last):
            stack.pop()
        (stack[-1].children if stack else roots).append(block)
        stack.append(block)
    return roots


def _outer_loops(blocks: list[_Block]) -> list[_Block]:
    found: list[_Block] = []
    for block in blocks:
        if block.kind == "loop":
            found.append(block)
        else:
            found.extend(_outer_loops(block.children))
    return found


def _loops_holding(blocks: list[_Block], index: int) -> list[_Block]:
    """The loop blocks that contain event `index`, outermost first."""
    chain: list[_Block] = []
    for block in blocks:
        if block.first <= index < block.last:
            if block.kind == "loop":
                chain.append(block)
            chain.extend(_loops_holding(block.children, index))
    return chain


class LoopModes:
    """The BN006 analysis for the functions of one file, with per-run memos of what
    project helpers do to the keys they receive."""

    def __init__(self, index: ProjectIndex, path: str) -> None:
        self.index = index
        self.path = path
        self._effects: dict[tuple[str, str, str], tuple[str | None, EvalSource | None, bool]] = {}
        self._trains: dict[tuple[str, str, str], bool] = {}
        self._forwards: dict[tuple[str, str, str], bool] = {}
        self._methods: dict[tuple[str, str, tuple[int, ...]], tuple[str, str] | None] = {}
        self._evaluated: dict[tuple[str, str], set[str]] = {}

    # -- what a call does to a key ------------------------------------------------------
    def callee_keys(
        self, path: str, function: str, event: Json, key: str
    ) -> list[tuple[str, str, str, bool]] | None:
        """The keys under which a call's callee sees `key`: (path, function, key, whole)
        where `whole` is False when only a part of `key` is passed. None when the callee
        is not a project function but receives `key` (it may do anything to it)."""
        passed = [a for a in event.get("args", []) if a] + [
            v for v in event.get("kwargs", {}).values() if v
        ]
        same_self = key.startswith("self.") and event["fn"].startswith("self.")
        callee = self.resolve(path, function, event["fn"])
        facts = self.index.function_facts(*callee) if callee is not None else None
        if callee is None or facts is None:
            if related(event["fn"], key) or self._submodule_call(path, function, event["fn"]):
                return []  # `self.model(x)`: the model's forward, not a helper
            if same_self or any(related(a, key) for a in passed):
                return None
            return []
        mapped: list[tuple[str, str, str, bool]] = []
        params = call_parameters(facts)
        for parameter in params:
            argument = argument_key(event, params, parameter)
            if argument is None:
                continue
            if covers(argument, key):
                mapped.append((*callee, parameter + key[len(argument) :], True))
            elif covers(key, argument):
                mapped.append((*callee, parameter, False))
        if same_self:
            mapped.append((*callee, key, True))
        if self._global(callee[0], facts, key) and any(
            related(e.get("key") or e.get("fn") or "", key) for e in facts["events"]
        ):
            mapped.append((*callee, key, True))  # a module-level model used by name
        return mapped

    def keys_of(
        self, path: str, function: str, event: Json, key: str
    ) -> list[tuple[str, str, str, bool]] | None:
        """`callee_keys` for a "call" event, and for an opaque `recv.method(...)` event
        whose method the index finds in the receiver's project class; None for an
        opaque event it cannot follow that touches `key`, [] when it does not."""
        if event["k"] == "call":
            return self.callee_keys(path, function, event, key)
        method = self.method(path, function, event)
        if method is not None:
            return method_keys(self.index, method, event, key)
        if any(related(a, key) for a in event.get("args", [])):
            return None
        return []

    def method(self, path: str, function: str, event: Json) -> tuple[str, str] | None:
        """The project method an opaque `recv.method(...)` event calls, if known."""
        if "recv" not in event:
            return None
        memo = (path, function, tuple(event["pos"]))
        if memo not in self._methods:
            self._methods[memo] = method_of(self.index, path, function, event)
        return self._methods[memo]

    def _global(self, path: str, facts: Json, key: str) -> bool:
        """Whether `key` names a module-level object inside a function of `path`."""
        root = key.split(".")[0]
        if root == "self" or root in facts["params"] or root in facts["bindings"]:
            return False
        module = self.index.function_facts(path, "<module>")
        return module is not None and root in module["bindings"]

    def resolve(self, path: str, function: str, callee: str) -> tuple[str, str] | None:
        """The project function a call names; `self.<method>` also through the project
        base classes of the method's class."""
        found = self.index.resolve_function(path, function, callee)
        if found is not None or not callee.startswith("self."):
            return found
        facts = self.index.function_facts(path, function)
        owner = facts.get("owner") if facts else None
        method = callee.split(".", 1)[1]
        todo = [(path, owner)] if owner else []
        seen: set[tuple[str, str]] = set()
        while todo:
            class_path, name = todo.pop(0)
            if (class_path, name) in seen or len(seen) > _DEPTH * 4:
                continue
            seen.add((class_path, name))
            if method in self.index.class_info(class_path, name)["methods"]:
                return class_path, f"{name}.{method}"
            for base in self.index.class_info(class_path, name)["bases"]:
                target = self.index.lookup(class_path, base)
                if target is not None and target[1] == "class":
                    todo.append((target[0], target[2]))
        return None

    def _submodule_call(self, path: str, function: str, callee: str) -> bool:
        """`self.<attr>(...)` where `<attr>` is a layer the class builds."""
        facts = self.index.function_facts(path, function)
        owner = facts.get("owner") if facts else None
        if not owner or not callee.startswith("self.") or callee.count(".") != 1:
            return False
        return callee.split(".", 1)[1] in self.index.class_layers(path, owner)

    def effect(
        self, path: str, function: str, key: str, depth: int = 0
    ) -> tuple[str | None, EvalSource | None, bool]:
        """What a function leaves `key` in: ("train" | "eval" | "unknown" | None, where
        the eval happens, whether that eval is conditional)."""
        memo = (path, function, key)
        if memo in self._effects:
            return self._effects[memo]
        self._effects[memo] = ("unknown", None, False)  # a recursion cycle: unknown
        result = self._effect(path, function, key, depth)
        self._effects[memo] = result
        return result

    def _effect(
        self, path: str, function: str, key: str, depth: int
    ) -> tuple[str | None, EvalSource | None, bool]:
        facts = self.index.function_facts(path, function)
        if facts is None or depth > _DEPTH:
            return "unknown", None, False
        blocks = facts.get("blocks", [])
        for position in range(len(facts["events"]) - 1, -1, -1):
            event = facts["events"][position]
            kind = event["k"]
            target = event.get("key")
            if kind == "train" and target and related(target, key):
                return ("train" if covers(target, key) else "unknown"), None, False
            if kind == "setmode" and target and related(target, key):
                return "unknown", None, False
            if kind == "opaque" and self.method(path, function, event) is None:
                if any(related(a, key) for a in event["args"]):
                    return "unknown", None, False
                continue
            if kind == "eval" and target and covers(target, key):
                conditional = any(b["first"] <= position < b["last"] for b in blocks)
                return "eval", EvalSource(path, function, event), conditional
            if kind in ("call", "opaque"):
                mapped = self.keys_of(path, function, event, key)
                if mapped is None:
                    return "unknown", None, False
                for callee_path, callee, callee_key, whole in mapped:
                    mode, source, conditional = self.effect(
                        callee_path, callee, callee_key, depth + 1
                    )
                    if mode == "eval" and not whole:
                        continue
                    if mode is not None:
                        return mode, source, conditional
        return None, None, False

    def trains_on_entry(self, path: str, function: str, key: str, depth: int = 0) -> bool:
        """Whether the function runs a training step on `key` before it sets any mode:
        it trains in whatever mode its caller left the model in."""
        memo = (path, function, key)
        if memo not in self._trains:
            self._trains[memo] = False  # a recursion cycle: no
            self._trains[memo] = self._trains_on_entry(path, function, key, depth)
        return self._trains[memo]

    def _trains_on_entry(self, path: str, function: str, key: str, depth: int) -> bool:
        facts = self.index.function_facts(path, function)
        if facts is None or depth > _DEPTH:
            return False
        for position, event in enumerate(facts["events"]):
            kind = event["k"]
            target = event.get("key")
            if kind in ("train", "setmode", "eval") and target and related(target, key):
                return False
            if kind == "opaque" and self.method(path, function, event) is None:
                if any(related(a, key) for a in event["args"]):
                    return False
                continue
            if kind == "backward" and self.used_before(path, function, facts, position, {key}):
                return True
            if kind in ("call", "opaque"):
                mapped = self.keys_of(path, function, event, key)
                if mapped is None:
                    return False
                for callee_path, callee, callee_key, whole in mapped:
                    if whole and self.trains_on_entry(callee_path, callee, callee_key, depth + 1):
                        return True
                    if self.effect(callee_path, callee, callee_key, depth + 1)[0] is not None:
                        return False
        return False

    def forwards(self, path: str, function: str, key: str, depth: int = 0) -> bool:
        """Whether a (non-evaluation) function runs `key` forward with grad enabled."""
        memo = (path, function, key)
        if memo not in self._forwards:
            self._forwards[memo] = False
            facts = self.index.function_facts(path, function)
            self._forwards[memo] = (
                facts is not None
                and depth <= _DEPTH
                and not facts.get("nograd")
                and not is_eval_function(function)
                and self._uses(path, function, facts, facts["events"], {key}, depth)
            )
        return self._forwards[memo]

    def used_before(
        self, path: str, function: str, facts: Json, position: int, names: set[str]
    ) -> bool:
        """Whether the loop around the `backward()` at `position` runs one of `names`
        forward before it (the step trains that model)."""
        backward = facts["events"][position]
        first = facts["loops"][backward["loop"]]["first"] if "loop" in backward else 0
        return self._uses(path, function, facts, facts["events"][first:position], names, 0)

    def _uses(
        self, path: str, function: str, facts: Json, events: list[Json], names: set[str], depth: int
    ) -> bool:
        for event in events:
            if event.get("nograd"):
                continue
            if event["k"] == "forward" and not event.get("dummy"):
                if any(related(event["key"], name) for name in names):
                    return True
            elif event["k"] == "opaque" and "fn" in event:
                if any(event["fn"] == name for name in names):
                    return True  # a module-level model called by name
            elif event["k"] == "call" or self.method(path, function, event) is not None:
                for name in names:
                    for callee_path, callee, callee_key, _ in (
                        self.keys_of(path, function, event, name) or []
                    ):
                        if self.forwards(callee_path, callee, callee_key, depth + 1):
                            return True
        return False

    # -- the loops of one function ------------------------------------------------------
    def leaks(self, function: str, facts: Json) -> list[Leak]:
        if not facts["loops"]:
            return []
        roots = _block_tree(facts)
        found: list[Leak] = []
        seen: set[int] = set()
        for loop in _outer_loops(roots):
            for key in self._candidates(function, facts, loop):
                kind = part_kind(self.index, self.path, function, key)
                if kind is None:
                    kind = member_kind(self.index, self.path, function, key)
                if kind != "bn":
                    continue
                flow = _Flow(self, function, facts, key)
                before = mode_before(
                    self.index, self.path, function, facts["events"], loop.first, key
                )
                flow.loop(loop, frozenset({(-1, False)} if before == "eval" else {_TRAIN}))
                if not flow.trains:
                    continue
                for origin, reached in sorted(flow.reached.items()):
                    if origin in seen:
                        continue
                    seen.add(origin)
                    holding = _loops_holding(roots, origin)
                    pairs = [
                        (training, [b for b in holding if b.first <= training < b.last][-1])
                        for training in sorted(reached)
                    ]
                    common = [facts["loops"][block.loop or 0] for _, block in pairs]
                    found.append(
                        Leak(
                            key=key,
                            origin=facts["events"][origin],
                            source=flow.sources.get(origin),
                            training=facts["events"][pairs[0][0]],
                            loop=common[0],
                            origin_index=origin,
                            reached=tuple(
                                (training, facts["events"][training]["pos"], loop["pos"])
                                for (training, _), loop in zip(pairs, common, strict=True)
                            ),
                        )
                    )
        return found

    def _candidates(self, function: str, facts: Json, loop: _Block) -> list[str]:
        """Keys an `.eval()` in the loop (direct, or by a helper it calls) may leave in
        eval, when the loop holds anything that may train."""
        events = facts["events"][loop.first : loop.last]
        if not any(e["k"] in ("backward", "call") or "recv" in e for e in events):
            return []
        keys: dict[str, None] = {}
        for event in events:
            if event["k"] == "eval" and event.get("key"):
                keys[event["key"]] = None
            elif event["k"] == "call" or "recv" in event:
                for key in self.evaluated_keys(self.path, function, event, 0):
                    keys[key] = None
            if event["k"] == "call":
                callee = self.resolve(self.path, function, event["fn"])
                callee_facts = self.index.function_facts(*callee) if callee else None
                if callee is None or callee_facts is None:
                    continue
                params = call_parameters(callee_facts)
                for inner in callee_facts["events"]:
                    target = inner.get("key")
                    if inner["k"] != "eval" or not target:
                        continue
                    root = target.split(".")[0]
                    if root in params:
                        argument = argument_key(event, params, root)
                        if argument is not None:
                            keys[argument + target[len(root) :]] = None
                    elif root == "self":
                        if event["fn"].startswith("self."):
                            keys[target] = None
                    elif self._global(callee[0], callee_facts, target):
                        keys[target] = None  # a module-level model used by name
        return list(keys)

    def evaluated_keys(self, path: str, function: str, event: Json, depth: int) -> set[str]:
        """Keys of the caller that a call (a project function, or a method of a project
        object) may leave in eval through the helpers it calls in turn:
        `validate(model)` → `encode_data(model)` → `model.val_start()` →
        `self.img_enc.eval()` gives `model.img_enc`."""
        if depth > _DEPTH:
            return set()
        if event["k"] == "call":
            callee = self.resolve(path, function, event["fn"])
            receiver = "self" if event["fn"].startswith("self.") else None
            call = event
        else:
            callee = self.method(path, function, event)
            receiver = event.get("recv")
            call = {"args": event.get("margs", []), "kwargs": event.get("mkw", {})}
        facts = self.index.function_facts(*callee) if callee is not None else None
        if callee is None or facts is None:
            return set()
        params = call_parameters(facts)
        found: set[str] = set()
        for inner in self._evaluated_in(*callee, facts, depth):
            root = inner.split(".")[0]
            if root == "self" and receiver is not None:
                found.add(receiver + inner[len(root) :])
            elif root in params:
                argument = argument_key(call, params, root)
                if argument is not None:
                    found.add(argument + inner[len(root) :])
        return found

    def _evaluated_in(self, path: str, function: str, facts: Json, depth: int) -> set[str]:
        """Keys (parameters, `self.*`) a function may leave in eval, through its callees."""
        memo = (path, function)
        if memo in self._evaluated:
            return self._evaluated[memo]
        self._evaluated[memo] = set()  # a recursion cycle: nothing more
        keys: set[str] = set()
        for event in facts["events"]:
            if event["k"] == "eval" and event.get("key"):
                keys.add(event["key"])
            elif event["k"] == "call" or (event["k"] == "opaque" and "recv" in event):
                keys |= self.evaluated_keys(path, function, event, depth + 1)
        self._evaluated[memo] = keys
        return keys


class _Flow:
    """The mode data flow of one key over one outermost loop."""

    def __init__(self, modes: LoopModes, function: str, facts: Json, key: str) -> None:
        self.modes = modes
        self.function = function
        self.facts = facts
        self.events: list[Json] = facts["events"]
        self.key = key
        self.names = _aliases(facts, key)
        self.trains = False
        self.reached: dict[int, set[int]] = {}
        self.sources: dict[int, EvalSource] = {}
        self.kills = 0
        self.continues: list[set[Token]] = []

    # -- blocks ---------------------------------------------------------------------------
    def region(self, start: int, end: int, children: list[_Block], state: State) -> State:
        inner = iter(children)
        child = next(inner, None)
        position = start
        while position < end:
            if child is not None and child.first == position:
                state = self.block(child, state)
                position = child.last
                child = next(inner, None)
                continue
            state = self.event(position, state)
            position += 1
        return state

    def block(self, block: _Block, state: State) -> State:
        if block.kind == "loop":
            return self.loop(block, state)
        kills = self.kills
        then = [c for c in block.children if c.first < block.mid]
        orelse = [c for c in block.children if c.first >= block.mid]
        taken = self.region(block.first, block.mid, then, state)
        other = self.region(block.mid, block.last, orelse, state)
        merged = taken | other
        if self.kills != kills and (merged or state):
            # One side restores the mode: trust the author for both sides.
            merged = frozenset(t for t in merged if t not in state) | {_TRAIN}
        return merged

    def loop(self, block: _Block, state: State) -> State:
        head = state
        for _ in range(8):
            self.continues.append(set())
            body = self.region(block.first, block.last, block.children, head)
            back = set(body) | self.continues.pop()
            wrapped = frozenset(
                (origin, wrap or block.first <= origin < block.last)
                if (origin, wrap) != _TRAIN
                else _TRAIN
                for origin, wrap in back
            )
            grown = head | wrapped
            if grown == head:
                break
            head = grown
        if block.runs:
            # Every path goes through the body once: the states it leaves, not the
            # state before the loop.
            self.continues.append(set())
            last = self.region(block.first, block.last, block.children, head)
            return last | frozenset(self.continues.pop())
        return head

    # -- events ---------------------------------------------------------------------------
    def touches(self, key: str | None) -> bool:
        return key is not None and any(related(key, name) for name in self.names)

    def restored(self) -> State:
        self.kills += 1
        return frozenset({_TRAIN})

    def event(self, position: int, state: State) -> State:
        if not state:
            return state
        event = self.events[position]
        kind = event["k"]
        if kind == "jump":
            if event["to"] == "continue" and self.continues:
                self.continues[-1].update(state)
            return _EMPTY
        if kind in ("train", "setmode") and self.touches(event.get("key")):
            return self.restored()
        if kind == "opaque" and self.modes.method(self.modes.path, self.function, event):
            return self.call(position, event, state)
        if kind == "opaque" and any(self.touches(a) for a in event["args"]):
            return self.restored()
        if kind == "eval" and any(covers(event.get("key") or "", n) for n in self.names):
            return self.evaluated(state, position, must=True)
        if kind == "backward":
            if self.modes.used_before(
                self.modes.path, self.function, self.facts, position, self.names
            ):
                self.training_point(position, state)
            return state
        if kind == "call":
            return self.call(position, event, state)
        return state

    def call(self, position: int, event: Json, state: State) -> State:
        mapped: list[tuple[str, str, str, bool]] = []
        for name in self.names:
            keys = self.modes.keys_of(self.modes.path, self.function, event, name)
            if keys is None:
                return self.restored()  # an unknown callee receives the model
            mapped.extend(keys)
        for callee_path, callee, callee_key, whole in mapped:
            if whole and self.modes.trains_on_entry(callee_path, callee, callee_key):
                self.training_point(position, state)
            mode, source, conditional = self.modes.effect(callee_path, callee, callee_key)
            if mode in ("train", "unknown"):
                return self.restored()
            if mode == "eval" and whole and source is not None:
                self.sources.setdefault(position, source)
                state = self.evaluated(state, position, must=not conditional)
        return state

    def evaluated(self, state: State, position: int, must: bool) -> State:
        if _TRAIN not in state:
            return state  # already in eval on every path: the earlier eval is the cause
        evals = frozenset(t for t in state if t != _TRAIN) | {(position, False)}
        return evals if must else evals | {_TRAIN}

    def training_point(self, position: int, state: State) -> None:
        for origin, wrapped in state:
            if (origin, wrapped) == _TRAIN:
                self.trains = True
            elif wrapped and origin >= 0:
                self.reached.setdefault(origin, set()).add(position)


def _aliases(facts: Json, key: str) -> set[str]:
    """`key` and the names bound only to it (`net = model.module`, `model = DDP(net)`)."""
    names = {key}
    bindings = facts["bindings"]
    for name, bound in bindings.items():
        if bound and all(b.get("alias") == key for b in bound):
            names.add(name)
    own = bindings.get(key, [])
    if own and all("alias" in b for b in own):
        names.update(b["alias"] for b in own)
    return names
