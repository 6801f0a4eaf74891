"""Training continues in eval mode after a validation pass.

## What it does
Checks for an `.eval()` inside a training loop that is still in effect when the loop
comes back around to the next `backward()`: the `model.eval()` of a validation pass
at the end of an epoch, of an "evaluate every N steps" block, or of a project helper
such as `validate(model)` that sets eval and returns without `model.train()` (in this
file or, through the project index, in another one), also several helpers deep and
through methods of project objects: `validate(model)` → `encode(model)` →
`model.val_start()`, where `model` is a plain project class whose `val_start()` calls
`self.img_enc.eval()` (the object's class is known from its binding, from the
`self.<attr>` its class builds, or from what the callers pass). A mode call on the
variable of a loop over a list or tuple of models (`for m in (encoder, decoder):
m.train()`) acts on each of them. The loop must train the same model at some
`backward()` (a forward of it precedes the `backward()` in the loop, or a project
helper or method such as `train_one_epoch(model, ...)` or `model.train_emb(...)` runs
the step).

Stays silent when a `.train()` (or `.train(flag)`, `try/finally`, a helper that
restores the mode) comes in between on any branch; when a call bnlint cannot follow
receives the model in between (it may restore the mode, as the timm and torchvision
`train_one_epoch` do); when the model is in eval at every `backward()` (a frozen
teacher, a backbone kept in eval on purpose, a GAN generator switched per step); for
a different model (`ema.eval()`); for an eval after the loop or undone within the
same iteration; for a `break`/`return` after the eval; and for models whose kind
(BatchNorm or not) is unknown.

The runtime check remembers which BatchNorm layers ran a training forward with grad
enabled; when such a layer later runs in eval mode with grad enabled and a
`backward()` follows, it reports that `backward()` call. BatchNorm layers that were in
eval mode from the start (a frozen backbone) are not reported.

## Why is this bad?
From the second epoch on, BatchNorm normalises with the running statistics instead
of the batch's, the running statistics stop updating, and Dropout is off. The loss
still goes down, so nothing looks wrong, but the model trains differently from the
first epoch and usually ends worse (P03).

## Example
```python
for epoch in range(epochs):
    for x, y in train_loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    validate(model, val_loader)
```

## Use instead
```python
for epoch in range(epochs):
    model.train()
    for x, y in train_loader:
        ...
    model.eval()
    validate(model, val_loader)
```

## Fix safety
The fix inserts `model.train()` as the first statement of the loop whose next
iteration the eval reaches (or, when the eval comes earlier in the same loop body,
right before the inner loop that trains). It is unsafe: it also undoes a deliberate
`eval()` of a part of the model made earlier in that loop body, and the placement
may not be where the author wants the mode set. No fix is offered when no single
place covers every path from the eval to the `backward()` (an eval between the
forward and the `backward()` of one step).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from typing import Any

from bnlint.events import Backward, BatchNormCall, Event
from bnlint.finding import Applicability, Severity
from bnlint.index.locate import ast_node_at
from bnlint.index.loop_modes import Leak, LoopModes
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuntimeReport

_LOOPS = (ast.For, ast.AsyncFor, ast.While)


class TrainModeNotRestored(Rule):
    code = "BN006"
    name = "train-mode-not-restored"
    severity = Severity.WARNING
    syntax = "ast"
    # A training step (`.backward(`, or a call of `train(...)`/`train_*(...)`) somewhere
    # in the file. No pattern for the evaluation side: the rule reads only the index
    # (no parse), so a loose pre-filter costs ~0.03 s over 720 files, while a regex
    # asking for both sides cost 0.9 s of scanning on the same files.
    triggers = ("backward", "train")
    needs_index = True
    autofix = "unsafe"
    engines = ("static", "runtime")
    runtime_events = (BatchNormCall, Backward)

    VALID = (
        "import torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "for epoch in range(10):\n"
        "    model.train()\n"
        "    for x, y in loader:\n"
        "        loss = criterion(model(x), y)\n"
        "        loss.backward()\n"
        "    model.eval()\n"
        "    evaluate(model)\n",
        # The teacher is in eval at every step: frozen on purpose.
        "import torchvision\n"
        "student = torchvision.models.resnet18()\n"
        "teacher = torchvision.models.resnet50()\n"
        "for epoch in range(10):\n"
        "    teacher.eval()\n"
        "    for x, y in loader:\n"
        "        loss = kd(student(x), teacher(x))\n"
        "        loss.backward()\n",
    )
    INVALID = (
        Invalid(
            "import torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "for epoch in range(10):\n"
            "    for x, y in loader:\n"
            "        loss = criterion(model(x), y)\n"
            "        loss.backward()\n"
            "    model.eval()\n",
            fixed="import torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "for epoch in range(10):\n"
            "    model.train()\n"
            "    for x, y in loader:\n"
            "        loss = criterion(model(x), y)\n"
            "        loss.backward()\n"
            "    model.eval()\n",
        ),
        Invalid(
            "import torchvision\n"
            "def validate(net):\n"
            "    net.eval()\n"
            "    return sum(net(x).sum() for x in val_data)\n"
            "model = torchvision.models.resnet18()\n"
            "for step, (x, y) in enumerate(loader):\n"
            "    criterion(model(x), y).backward()\n"
            "    if step % 100 == 0:\n"
            "        validate(model)\n",
            fixed="import torchvision\n"
            "def validate(net):\n"
            "    net.eval()\n"
            "    return sum(net(x).sum() for x in val_data)\n"
            "model = torchvision.models.resnet18()\n"
            "for step, (x, y) in enumerate(loader):\n"
            "    model.train()\n"
            "    criterion(model(x), y).backward()\n"
            "    if step % 100 == 0:\n"
            "        validate(model)\n",
        ),
    )

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        # Per module, idempotent (the tracer delivers a repeated identical call once):
        # which BNs trained, and which of those last ran in eval with grad enabled.
        trained: set[str] = memory.setdefault("trained", set())
        in_eval: dict[str, None] = memory.setdefault("eval_with_grad", {})
        if isinstance(event, BatchNormCall):
            if not event.grad_enabled:
                return
            path = event.module.path
            if event.training:
                trained.add(path)
                in_eval.pop(path, None)
            elif path in trained:
                in_eval[path] = None
            return
        if isinstance(event, Backward) and in_eval:
            names = list(in_eval)
            shown = ", ".join(f"`{name}`" for name in names[:3])
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            yield RuntimeReport(
                message=f"`backward()` through BatchNorm layers {shown}{more} that trained "
                "earlier but now run in eval mode: a `model.eval()` was not undone by "
                "`model.train()`",
                suggestion="call `model.train()` at the start of each epoch or training step",
                subject="backward",
            )

    def check_module(self) -> None:
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        modes = LoopModes(index, self.context.path)
        for function, facts in index.functions(self.context.path):
            for leak in modes.leaks(function, facts):
                self._report(leak)

    def _report(self, leak: Leak) -> None:
        tree = self.context.tree
        source = self.context.source
        node = ast_node_at(tree, source, leak.origin["pos"], (ast.Call, ast.Attribute))
        if node is None:
            return
        key = leak.key
        loop_line = leak.loop["pos"][0]
        if leak.training["k"] == "backward":
            training = f"`backward()` on line {leak.training['pos'][0]}"
        else:
            step = leak.training.get("fn") or leak.training.get("method") or "step"
            training = (
                f"the training step in `{step.split('.')[-1].lstrip('~')}()` "
                f"called on line {leak.training['pos'][0]}"
            )
        if leak.source is None:
            what = f"`{key}` is put into eval mode here"
        else:
            where = f"line {leak.source.event['pos'][0]}"
            if os.path.abspath(leak.source.path) != os.path.abspath(self.context.path):
                where = f"{os.path.basename(leak.source.path)}:{leak.source.event['pos'][0]}"
            helper = leak.source.function.split(".")[-1]
            what = (
                f"`{helper}()` leaves `{key}` in eval mode (its `.eval()` on {where}) "
                "and does not restore it"
            )
        fix = self._fix(leak)
        if fix is not None:
            suggestion = f"call `{key}.train()` {fix[1]}"
        else:
            suggestion = (
                f"call `{key}.train()` after the evaluation on line {leak.origin['pos'][0]} "
                "(or at the start of each training step)"
            )
        self.report(
            node,
            message=(
                f"{what}, and the loop on line {loop_line} comes back to {training} "
                f"with no `{key}.train()` in between: from the next iteration on, "
                "BatchNorm trains on its running statistics and Dropout is off"
            ),
            suggestion=suggestion,
            fix=None if fix is None else fix[0],
        )

    def _fix(self, leak: Leak) -> tuple[PendingFix, str] | None:
        """One `<key>.train()` that every path from the eval to a `backward()` it
        reaches passes: the first statement of the loop the eval goes around, or,
        when the eval comes earlier in that loop's body, right before the inner loop
        that trains."""
        tree = self.context.tree
        source = self.context.source
        origin_line = leak.origin["pos"][0]
        anchors: dict[tuple[int, int], tuple[ast.stmt, str]] = {}
        for training, training_pos, loop_pos in leak.reached:
            loop = ast_node_at(tree, source, loop_pos, _LOOPS)
            if not isinstance(loop, _LOOPS) or not loop.body:
                return None
            if leak.origin_index > training:
                anchor = loop.body[0]
                where = (
                    f"at the top of the loop on line {loop.lineno} (before line {anchor.lineno})"
                )
            else:
                inner = _child_holding(loop.body, training_pos[0])
                if not isinstance(inner, _LOOPS) or inner is _child_holding(loop.body, origin_line):
                    return None
                anchor = inner
                where = f"right before the training loop on line {anchor.lineno}"
            anchors[(anchor.lineno, anchor.col_offset)] = (anchor, where)
        if len(anchors) != 1:
            return None
        anchor, where = next(iter(anchors.values()))
        indent = source.splitlines()[anchor.lineno - 1][: anchor.col_offset]
        if indent.strip():
            return None  # `for x in y: step()` on one line
        fix = PendingFix(
            Applicability.UNSAFE,
            f"Call `{leak.key}.train()` at the start of each iteration",
            (NodeEdit(anchor, "before", f"{leak.key}.train()\n{indent}"),),
        )
        return fix, where


def _child_holding(body: list[ast.stmt], line: int) -> ast.stmt | None:
    """The statement of `body` whose lines include `line`."""
    for statement in body:
        if statement.lineno <= line <= (statement.end_lineno or statement.lineno):
            return statement
    return None
