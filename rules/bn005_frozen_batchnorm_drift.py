"""Frozen BatchNorm whose running statistics keep drifting.

## What it does
Checks for parameters frozen (`requires_grad_(False)`, `p.requires_grad = False` over
`.parameters()`) on a module that contains trainable BatchNorm, followed by a
`.train()` on it or an ancestor (directly or in a project helper such as
`train_one_epoch(model)`) with no `.eval()` re-freeze after it; and an explicit BN
freeze (`backbone.eval()`, `model.apply(set_bn_eval)`, a loop that calls `m.eval()` on
BN modules) undone by a later ancestor `.train()`. `FrozenBatchNorm2d`, `norm_eval`,
a `train()` override that re-freezes BN, and freezes that spare BN parameters stay
silent; so does everything when `transductive-batchnorm` is set.

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
from bnlint.index.locate import node_at
from bnlint.index.modes import part_kind
from bnlint.index.project import argument_key, call_parameters
from bnlint.rule import Invalid, Rule, RuntimeReport, cst

Json = dict[str, Any]


class FrozenBatchnormDrift(Rule):
    code = "BN005"
    name = "frozen-batchnorm-drift"
    severity = Severity.WARNING
    triggers = ("requires_grad", ".eval(", ".apply(", "freeze")
    needs_index = True
    engines = ("static", "runtime")
    runtime_events = (BatchNormCall, RunningStatsUpdated)

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
        path = self.context.path
        for function, facts in index.functions(path):
            events = facts["events"]
            for position, event in enumerate(events):
                for key in self._frozen_keys(index, function, event):
                    if part_kind(index, path, function, key) != "bn":
                        continue
                    undo = self._undoing_train(index, function, events, position, key)
                    if undo is not None:
                        self._report(event, undo, key)
                        break
                else:
                    continue
                break

    def _frozen_keys(self, index: ProjectIndex, function: str, event: Json) -> list[str]:
        """The objects this event freezes: its own target, or what a project helper
        such as `freeze(model.backbone)` freezes."""
        key = event.get("key")
        if key is not None and self._is_freeze(event):
            return [key]
        if event["k"] == "call":
            return index.frozen_by_call(self.context.path, function, event)
        return []

    def _is_freeze(self, event: Json) -> bool:
        if event["k"] in ("freeze", "bn_eval"):
            return True
        key = event.get("key") or ""
        depth = key.count(".") - (1 if key.startswith("self.") else 0)
        return event["k"] == "eval" and depth >= 1

    def _undoing_train(
        self, index: ProjectIndex, function: str, events: list[Json], position: int, key: str
    ) -> Json | None:
        for later_position in range(position + 1, len(events)):
            later = events[later_position]
            target = later.get("key")
            trains = (
                later["k"] == "train"
                and target is not None
                and covers(target, key)
                # a class whose train() override re-freezes its BN
                and index.key_kind(self.context.path, function, target) != "frozen"
            )
            if later["k"] == "call" and not trains:
                trains = self._callee_trains(index, function, later, key)
            if trains and not self._refrozen(events[later_position + 1 :], key):
                return later
        return None

    def _callee_trains(self, index: ProjectIndex, function: str, event: Json, key: str) -> bool:
        callee = index.resolve_function(self.context.path, function, event["fn"])
        if callee is None:
            return False
        facts = index.function_facts(*callee)
        if facts is None:
            return False
        params = call_parameters(facts)
        for parameter in params:
            passed = argument_key(event, params, parameter)
            if passed is not None and covers(passed, key):
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

    def _refrozen(self, events: list[Json], key: str) -> bool:
        for event in events:
            target = event.get("key")
            if event["k"] == "bn_eval" and target is not None and related(target, key):
                return True
            if event["k"] == "eval" and target is not None and covers(key, target):
                return True
            if event["k"] == "call" and "freeze" in event["fn"].lower():
                return True
        return False

    def _report(self, freeze: Json, undo: Json, key: str) -> None:
        node = node_at(self.context.module, undo["pos"], cst.Call)
        if node is None:
            return
        how = {"freeze": "frozen", "call": "frozen by the call"}.get(freeze["k"], "put in eval")
        self.report(
            node,
            message=(
                f"`{key}` was {how} on line {freeze['pos'][0]} but this puts its BatchNorm "
                "back in training mode: its running statistics keep changing"
            ),
            suggestion=(
                f"call `{key}.eval()` after every `.train()` (or override `train()`), "
                "or use `FrozenBatchNorm2d`"
            ),
        )
