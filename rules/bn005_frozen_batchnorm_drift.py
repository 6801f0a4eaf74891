"""Frozen BatchNorm whose running statistics keep drifting.

## What it does
Checks for parameters frozen (`requires_grad_(False)`, `p.requires_grad = False` over
`.parameters()`, or over the BN layers of a `.modules()` loop) on a module that contains
trainable BatchNorm, followed by a `.train()` on it or an ancestor (directly, through a
local alias, or in a project helper such as `train_one_epoch(model)`) that reaches a
training step with no `.eval()` re-freeze before it; and an explicit BN freeze
(`backbone.eval()`, `model.apply(set_bn_eval)`, a loop that calls `m.eval()` on BN
modules, a helper or the model's own freeze method such as `net.freeze_bn()`) undone by
a later ancestor `.train()`. A validation `eval()` that comes after the training step is
not a re-freeze; a freeze at the top of a loop re-freezes the `train()` at its end.

Freezes made by a class's constructor (`lock(self.stem)`, `self.freeze_bn()`,
`self.backbone.eval()`, also in a project base class) are reported at a `.train()` on an
instance, naming the freeze line; when that `.train()` is in another file, the freeze
itself is also reported in the class's file, where the `train()` override belongs.

`FrozenBatchNorm2d`, `norm_eval`, a `train()` override that re-freezes BN, freezes that
spare BN parameters, momentum encoders and EMA teachers (parameters tied by a
moving-average loop) stay silent; so does everything when `transductive-batchnorm` is
set, and any model whose BatchNorm the index cannot establish.

The runtime check reports a training-mode BatchNorm whose affine parameters all have
`requires_grad=False` and whose running statistics did change (its
`num_batches_tracked` version counter moved, confirmed at its next call or when
tracing stops), pointing at the `train()` call that put it in training mode when the
tracer saw it; and a BatchNorm that an explicit `bn.eval()` (on it or on a sub-module)
had frozen and that a later `train()` on an ancestor put back in training, with both
call sites. `FrozenBatchNorm2d` (not a `_BatchNorm`) and BN kept in eval are silent.

## Why is this bad?
`requires_grad=False` freezes weights, not buffers: in training mode BN keeps updating
`running_mean`/`running_var` with the new (often small) batches, so the "frozen"
backbone drifts and no longer matches its weights at eval. `train()` recurses into
children, so a BN put in eval once is back in training mode after the next
`model.train()` (P10, P11).

## Example
```python
for p in model.backbone.parameters():
    p.requires_grad = False
for epoch in range(epochs):
    model.train()
    train_one_epoch(model, loader)
```

## Use instead
```python
for epoch in range(epochs):
    model.train()
    model.backbone.eval()  # keep the frozen BN statistics fixed
    train_one_epoch(model, loader)
```

## Fix safety
No automatic fix: whether the statistics should adapt is the author's choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormCall, Event, RunningStatsUpdated
from bnlint.finding import Severity
from bnlint.index import ProjectIndex, covers, related
from bnlint.index.freezes import (
    Freeze,
    averaged_keys,
    averaged_parts,
    class_chain,
    constructor_freezes,
    helper_freezes,
    instance_part_kind,
    key_classes,
    method_freezes,
)
from bnlint.index.locate import node_at
from bnlint.index.modes import part_kind
from bnlint.index.project import argument_key, call_parameters
from bnlint.rule import Invalid, Rule, RuntimeReport, cst

Json = dict[str, Any]


class FrozenBatchnormDrift(Rule):
    code = "BN005"
    name = "frozen-batchnorm-drift"
    severity = Severity.WARNING
    triggers = ("requires_grad", ".eval(", ".apply(", "freeze", ".train(")
    needs_index = True
    engines = ("static", "runtime")
    runtime_events = (BatchNormCall, RunningStatsUpdated)
    # The checked function's plain aliases (`backbone = model.backbone`), per function.
    _aliases: dict[str, str]
    # The file of the function being read (the checked file, or another file's caller).
    _path: str

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if isinstance(event, RunningStatsUpdated) and event.call.affine_frozen:
            call = event.call
            yield RuntimeReport(
                message=f"BatchNorm `{call.module.path}` has frozen parameters "
                "(requires_grad=False) but runs in training mode, and its running "
                "statistics changed",
                suggestion="keep frozen BatchNorm in eval after every `train()` (override "
                "`train()`), or use `FrozenBatchNorm2d`",
                subject=call.module.path,
                at="site" if call.mode_site else "call",
                site=call.mode_site,
            )
        elif (
            isinstance(event, BatchNormCall)
            and event.updates_running_stats
            and event.frozen_eval_site is not None
        ):
            yield RuntimeReport(
                message=f"BatchNorm `{event.module.path}` was frozen with `.eval()` at "
                f"{event.frozen_eval_site}, but a later `train()` on an ancestor put it "
                "back in training mode",
                suggestion="re-apply the freeze after every `train()` (override `train()`), "
                "or use `FrozenBatchNorm2d`",
                subject=event.module.path + ":eval-undone",
                at="site" if event.mode_site else "call",
                site=event.mode_site,
                notes=(f"frozen by `.eval()` at {event.frozen_eval_site}",),
            )

    VALID = (
        "import torchvision\n"
        "model = torchvision.models.resnet50()\n"
        "model.requires_grad_(False)\n"
        "model.train()\n"
        "model.eval()\n",
    )
    INVALID = (
        Invalid(
            "import torchvision\n"
            "model = torchvision.models.resnet50()\n"
            "model.requires_grad_(False)\n"
            "model.train()\n"
        ),
    )

    def check_module(self) -> None:
        if self.context.options.get("transductive-batchnorm"):
            return
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        path = self._path = self.context.path
        self._aliases = {}
        self._trained_classes: set[tuple[str, str]] = set()
        for function, facts in index.functions(path):
            self._aliases = _aliases(facts)
            undone = self._statement_freeze_undone(index, function, facts)
            self._constructor_freeze_undone(index, function, facts, undone)
        self._constructor_freeze_trained_elsewhere(index)

    # -- a freeze made by a statement, undone later in the same function ---------------
    def _statement_freeze_undone(self, index: ProjectIndex, function: str, facts: Json) -> int:
        """Report the first freeze of the function that a later `.train()` undoes; the
        index of that `.train()` event (-1 when none)."""
        events = facts["events"]
        averaged: frozenset[str] | None = None
        for position, event in enumerate(events):
            for key, how in self._frozen_keys(index, function, event):
                if self._kind(index, function, key) != "bn":
                    continue
                if averaged is None:
                    averaged = averaged_keys(index, self._path, function)
                if any(related(key, other) for other in averaged):
                    continue  # a momentum encoder / EMA teacher: not a frozen extractor
                undo = self._undoing_train(index, function, facts, position, key)
                if undo is not None and self._reopened(index, function, events[position:undo], key):
                    continue
                if undo is not None:
                    self._report(event, how, events[undo], key)
                    return undo
        return -1

    def _frozen_keys(
        self, index: ProjectIndex, function: str, event: Json
    ) -> list[tuple[str, str]]:
        """(key, how) for what this event freezes: its own target, what a project helper
        such as `freeze(model.backbone)` freezes, or what a model's freeze method such
        as `net.freeze_bn()` freezes on it."""
        key = event.get("key")
        if key is not None and self._is_freeze(event):
            return [(key, "params" if event["k"] == "freeze" else "eval")]
        if event["k"] == "call":
            return helper_freezes(index, self._path, function, event)
        if event["k"] == "method" and key is not None:
            frozen: list[tuple[str, str]] = []
            for owner_path, owner in key_classes(index, self._path, function, key):
                for part, how, _ in method_freezes(index, owner_path, owner, event["fn"]) or []:
                    rebased = key + part[len("self") :]
                    frozen.append((rebased, how))
            return frozen
        return []

    def _reopened(self, index: ProjectIndex, function: str, between: list[Json], key: str) -> bool:
        """The freeze is lifted before the `.train()`: on the whole key, or on a part that
        holds BatchNorm (`for p in model.head.parameters(): p.requires_grad = True` after
        freezing `model`, where the head's BN is meant to train: MAE's linear probe)."""
        for event in between:
            target = event.get("key")
            if event["k"] != "unfreeze" or target is None:
                continue
            if self._canon(target) == self._canon(key):
                return True
            if not covers(self._canon(key), self._canon(target)):
                continue
            # The part's own binding first (`model.head = nn.Sequential(nn.BatchNorm1d(...),
            # ...)`), then what the model's class or factory says about it.
            kind = index.key_kind(self._path, function, target) or self._kind(
                index, function, target
            )
            if kind == "bn":
                return True
        return False

    def _kind(self, index: ProjectIndex, function: str, key: str) -> str | None:
        kind = part_kind(index, self._path, function, key)
        if kind is None and self._canon(key) != key:
            kind = part_kind(index, self._path, function, self._canon(key))
        return kind

    def _canon(self, key: str) -> str:
        """The key through the function's plain aliases (`backbone = model.backbone`)."""
        for _ in range(4):
            root, dot, rest = key.partition(".")
            if root not in self._aliases:
                break
            key = self._aliases[root] + dot + rest
        return key

    def _is_freeze(self, event: Json) -> bool:
        if event["k"] in ("freeze", "bn_eval"):
            return True
        key = event.get("key") or ""
        depth = key.count(".") - (1 if key.startswith("self.") else 0)
        return event["k"] == "eval" and depth >= 1

    def _undoing_train(
        self, index: ProjectIndex, function: str, facts: Json, position: int, key: str
    ) -> int | None:
        """The first `.train()` after `position` (here or in a project helper) that puts
        `key` back in training mode and is not followed by a re-freeze before training."""
        events = facts["events"]
        for later_position in range(position + 1, len(events)):
            later = events[later_position]
            target = later.get("key")
            trains = (
                later["k"] == "train"
                and target is not None
                and covers(self._canon(target), self._canon(key))
                # a class whose train() override re-freezes its BN
                and index.key_kind(self._path, function, target) != "frozen"
            )
            if later["k"] == "call" and not trains:
                trains = self._callee_trains(index, function, later, key)
            if trains and not self._refrozen(index, function, facts, later_position, key):
                return later_position
        return None

    def _callee_trains(self, index: ProjectIndex, function: str, event: Json, key: str) -> bool:
        callee = index.resolve_function(self._path, function, event["fn"])
        if callee is None:
            return False
        facts = index.function_facts(*callee)
        if facts is None:
            return False
        params = call_parameters(facts)
        for parameter in params:
            passed = argument_key(event, params, parameter)
            if passed is not None and covers(self._canon(passed), self._canon(key)):
                inner = [e for e in facts["events"] if e["k"] in ("train", "eval", "bn_eval")]
                trains = [
                    i
                    for i, e in enumerate(inner)
                    if e["k"] == "train" and e.get("key") == parameter
                ]
                if trains and not any(
                    e["k"] in ("eval", "bn_eval") for e in inner[trains[0] + 1 :]
                ):
                    return True
        return False

    def _refrozen(
        self, index: ProjectIndex, function: str, facts: Json, position: int, key: str
    ) -> bool:
        """Whether something re-freezes `key` after the `.train()` at `position` and
        before the next training step: a later validation `eval()` that comes after the
        step is not a re-freeze. A `.train()` inside a loop is followed by the loop's
        own head on the next pass (`freeze_bn(model)` at the top of each epoch)."""
        events = facts["events"]
        after = list(range(position + 1, len(events)))
        loop_index = events[position].get("loop")
        if loop_index is not None:
            loop = facts["loops"][loop_index]
            after = [*range(position + 1, loop["last"]), *range(loop["first"], position)]
        exclusive = _other_branches(facts, position)
        for later in after:
            if later in exclusive:
                continue
            event = events[later]
            if self._refreezes(index, function, event, key):
                return True
            if self._trains_a_step(index, function, event):
                return False
        return False

    def _refreezes(self, index: ProjectIndex, function: str, event: Json, key: str) -> bool:
        key = self._canon(key)
        target = None if event.get("key") is None else self._canon(event["key"])
        if event["k"] == "bn_eval" and target is not None and related(target, key):
            return True
        if event["k"] in ("eval", "freeze") and target is not None and covers(key, target):
            return bool(event["k"] == "eval")
        name = str(event.get("fn", "")).lower()
        looks_like_freeze = "freeze" in name and "unfreeze" not in name
        if event["k"] == "method" and target is not None and related(target, key):
            return looks_like_freeze or bool(self._frozen_keys(index, function, event))
        if event["k"] == "call":
            if looks_like_freeze:
                return True
            return any(
                how == "eval" and related(self._canon(frozen), key)
                for frozen, how in helper_freezes(index, self._path, function, event)
            )
        return False

    def _trains_a_step(self, index: ProjectIndex, function: str, event: Json) -> bool:
        """A `backward()` here, or a call of a project function that runs one."""
        if event["k"] == "backward":
            return True
        if event["k"] != "call":
            return False
        callee = index.resolve_function(self._path, function, event["fn"])
        facts: Json | None = index.function_facts(*callee) if callee is not None else None
        if facts is None:
            return False
        return any(e["k"] == "backward" for e in facts["events"])

    def _report(self, freeze: Json, how: str, undo: Json, key: str) -> None:
        node = node_at(self.context.module, undo["pos"], cst.Call)
        if node is None:
            return
        if freeze["k"] == "method":
            done = f"frozen by `.{freeze['fn']}()`"
        elif freeze["k"] == "call":
            done = "frozen by the call"
        else:
            done = "frozen" if how == "params" else "put in eval"
        alias = f" (`{self._canon(key)}`)" if self._canon(key) != key else ""
        self.report(
            node,
            message=(
                f"`{key}`{alias} was {done} on line {freeze['pos'][0]} but this puts its "
                "BatchNorm "
                "back in training mode: its running statistics keep changing"
            ),
            suggestion=(
                f"call `{key}.eval()` after every `.train()` (or override `train()`), "
                "or use `FrozenBatchNorm2d`"
            ),
        )

    # -- a freeze made by a class's constructor, undone by a `.train()` on an instance --
    def _constructor_freeze_undone(
        self, index: ProjectIndex, function: str, facts: Json, skip: int
    ) -> None:
        path = self.context.path
        for position in self._undoing_trains(index, path, function, facts):
            if position == skip:
                continue
            event = facts["events"][position]
            for owner_path, owner in sorted(key_classes(index, path, function, event["key"])):
                frozen = self._bn_constructor_freezes(index, owner_path, owner)
                if frozen:
                    self._trained_classes.add((owner_path, owner))
                    self._report_constructor(event, event["key"], owner_path, owner, frozen[0])
                    return

    def _bn_constructor_freezes(
        self, index: ProjectIndex, owner_path: str, owner: str
    ) -> list[Freeze]:
        """The constructor freezes of the class that leave BatchNorm drifting: of BN
        parts, not momentum-averaged, in a class whose `train()` does not re-freeze."""
        if index.keeps_bn_frozen(owner_path, owner):
            return []
        averaged = averaged_parts(index, owner_path, owner)
        return [
            freeze
            for freeze in constructor_freezes(index, owner_path, owner)
            if instance_part_kind(index, owner_path, owner, freeze.key) == "bn"
            and not any(related(freeze.key, other) for other in averaged)
        ]

    def _constructor_freeze_trained_elsewhere(self, index: ProjectIndex) -> None:
        """A class of this file whose constructor freezes BN, with no `train()` override,
        trained by a `.train()` in another file: reported at the freeze (the class is
        where the fix goes), naming that `.train()`."""
        path = self.context.path
        summary = index.summaries.get(path)
        if summary is None:
            return
        for name in summary.classes:
            if (path, name) in self._trained_classes:
                continue
            frozen = [f for f in self._bn_constructor_freezes(index, path, name) if f.path == path]
            if not frozen:
                continue
            site = self._training_site_elsewhere(index, path, name)
            node = node_at(self.context.module, list(frozen[0].pos))
            if site is None or node is None:
                continue
            part = "its BatchNorm" if frozen[0].key == "self" else f"`{frozen[0].key}`"
            done = "freezes the parameters of" if frozen[0].how == "params" else "puts in eval"
            self.report(
                node,
                message=(
                    f"`{name}`'s constructor {done} {part}, but `{name}` has no `train()` "
                    f"override that keeps it frozen and `.train()` on line {site[1]} of "
                    f"{site[0]} puts that BatchNorm back in training mode: its running "
                    "statistics keep changing"
                ),
                suggestion=(
                    f"override `train()` in `{name}` to call `.eval()` on the frozen part after "
                    "`super().train(mode)`, or use `FrozenBatchNorm2d`"
                ),
            )

    def _training_site_elsewhere(
        self, index: ProjectIndex, path: str, name: str
    ) -> tuple[str, int] | None:
        for other_path in sorted(index.summaries):
            if other_path == path:
                continue
            for function, facts in index.functions(other_path):
                if not any(e["k"] == "train" for e in facts["events"]):
                    continue
                for position in self._undoing_trains(index, other_path, function, facts):
                    key = facts["events"][position]["key"]
                    for found in key_classes(index, other_path, function, key):
                        if (path, name) in class_chain(index, *found):
                            return other_path, int(facts["events"][position]["pos"][0])
        return None

    def _undoing_trains(
        self, index: ProjectIndex, path: str, function: str, facts: Json
    ) -> Iterator[int]:
        """Positions of the `.train()` events of a function on keys of project classes, not
        re-frozen before the next training step."""
        saved = self._aliases, self._path
        self._aliases, self._path = _aliases(facts), path
        try:
            for position, event in enumerate(facts["events"]):
                key = event.get("key")
                if event["k"] != "train" or key is None:
                    continue
                if index.key_kind(path, function, key) == "frozen":
                    continue
                if not key_classes(index, path, function, key):
                    continue
                if not self._refrozen(index, function, facts, position, key):
                    yield position
        finally:
            self._aliases, self._path = saved

    def _report_constructor(
        self, undo: Json, key: str, owner_path: str, owner: str, freeze: Freeze
    ) -> None:
        node = node_at(self.context.module, undo["pos"], cst.Call)
        if node is None:
            return
        where = f"line {freeze.line}"
        if owner_path != self.context.path:
            where += f" of {owner_path}"
        part = "its BatchNorm" if freeze.key == "self" else f"`{freeze.key[len('self.') :]}`"
        done = (
            f"freezes the parameters of {part} (requires_grad=False)"
            if freeze.how == "params"
            else f"puts {part} in eval"
        )
        self.report(
            node,
            message=(
                f"`{key}` is a `{owner}`, whose constructor {done} on {where}, but "
                "this `.train()` puts that BatchNorm in training mode: its running "
                "statistics keep changing"
            ),
            suggestion=(
                f"keep the frozen part in eval: override `train()` in `{owner}` to call "
                "`.eval()` on it after `super().train(mode)`, or use `FrozenBatchNorm2d`"
            ),
        )


def _other_branches(facts: Json, position: int) -> set[int]:
    """Events that cannot run in the same pass as the event at `position`: the other
    branch of each `if` that holds it (`if mode == "train": m.train() else: m.eval()`)."""
    exclusive: set[int] = set()
    for block in facts.get("blocks", ()):
        if block["k"] != "if":
            continue
        first, mid, last = block["first"], block["mid"], block["last"]
        if first <= position < mid:
            exclusive.update(range(mid, last))
        elif mid <= position < last:
            exclusive.update(range(first, mid))
    return exclusive


def _aliases(facts: Json) -> dict[str, str]:
    """Names bound only to another key (`backbone = model.backbone`, `net = model.to(d)`,
    ignoring rebinding to itself such as `model = model.cuda()`)."""
    aliases: dict[str, str] = {}
    for name, bindings in facts["bindings"].items():
        if "." in name:
            continue
        targets = {b.get("alias") for b in bindings if b.get("alias") != name}
        if len(targets) == 1:
            (target,) = targets
            if target is not None and target.split(".")[0] != name:
                aliases[name] = target
    return aliases
