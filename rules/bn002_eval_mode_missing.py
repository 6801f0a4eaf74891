"""A BatchNorm model evaluated in training mode because `.eval()` was forgotten.

## What it does
Checks for a call of a BatchNorm model made to evaluate, validate, test or predict:
inside `torch.no_grad()`/`torch.inference_mode()`, inside a function named for
evaluation (eval, evaluate, val, validate, test, predict, infer, plus the
`eval-function-names` option), over batches from a loader named for validation or
test (also through `batches = tqdm(test_loader)`; the inline "evaluate every N steps"
block of a training loop), or in a script that loads trained weights
(`load_state_dict`) or asks for released ones (`weights=`, `pretrained=True`) and never
trains, when no `.eval()`/`.train(False)` reaches it: not earlier in the function,
not through a project helper that sets eval (also one given a list of models), not
from a project loader or wrapper that hands the model back in eval, and not in every
caller of the function (followed up the chain of helpers that pass the model on). An
evaluation path that explicitly calls `.train()` is reported too.

A `.train()` call made inside an evaluation is reported even when the model's kind is
unknown (a network assembled from parts the caller passes in): under
`no_grad`/`inference_mode`, in the loop over validation/test batches (or in a function
named for evaluation), right before a forward whose output is read. The finding is at
the `.train()` call, as a warning that says what happens *if* the model has BatchNorm
or Dropout. Monte Carlo dropout (several passes per batch, or a function that speaks
of dropout), statistics refreshes whose outputs are thrown away, and a `.train()`
placed before the evaluation block stay silent.

Models are followed through the project: closures (a validation pass defined inside
the training function runs that function's model), factories and helper methods that build
layers, classes that hold a module passed to their constructor, methods of project
objects (`solver.train(loader, model)`), imports inside functions. Lightning modules
(the trainer switches modes), statistics re-estimation (`update_bn`, PreciseBN),
test-time adaptation, a `no_grad` forward inside a training step (a GAN's generator
while the discriminator trains), a `no_grad` pass over the training loader in a
function not named for evaluation (a feature bank filled before an epoch: every caller
passes a loader named for training), smoke tests on random input, a model's own
`predict(x)`, models without BN and objects whose kind is unknown stay silent; so does
everything when `transductive-batchnorm` is set.

Severity: an error when every value the name may hold is a BatchNorm model and the
context surely evaluates (no grad, validation/test batches, a script that loads
weights and never trains); a warning when the context is known only by a function's
name or when only some candidate models have BatchNorm.

The runtime check reports a BatchNorm forward in training mode (with running
statistics) while grad is disabled (`no_grad`/`inference_mode`), at the user line
that called the model, unless a statistics re-estimation routine is on the stack
(`torch.optim.swa_utils.update_bn`, `update_bn_stats`, `recompute_bn_stats`,
`recalibrate_bn`, `bn_update`). It sees models the static index cannot resolve (built
by a factory, loaded from a checkpoint), but not an evaluation run with grad enabled.

## Why is this bad?
`no_grad` turns off gradients, not BatchNorm's training behaviour: each eval batch is
normalised with its own statistics, results depend on batch size and order, and the
running statistics are overwritten with validation data (P01, P06).

## Example
```python
def validate(model, loader):
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum()
```

## Use instead
```python
def validate(model, loader):
    model.eval()
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum()
    model.train()
```

## Fix safety
A forgotten `eval()` gets no fix: where to put it and how to restore the previous
mode depends on the surrounding code (the suggestion names the line). A `.train()`
called inside an evaluation gets an unsafe fix that turns it into `.eval()`: it changes
what the evaluation computes (on purpose), and the model stays in eval mode after the
block until the training code calls `.train()` again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormCall, Event
from bnlint.finding import Applicability, Severity
from bnlint.index import ProjectIndex, mode_before
from bnlint.index.eval_context import (
    built_in_eval,
    certainly_bn,
    dummy_input,
    explicit_train_in_evaluation,
    is_module_class,
    loaded_for_inference,
    mode_through_lists,
    script_trains,
)
from bnlint.index.locate import node_at
from bnlint.index.modes import EVAL_LOADER, RE_ESTIMATION, is_eval_function
from bnlint.index.project import argument_key, call_parameters, enclosing_function, related
from bnlint.rule import Invalid, NodeEdit, PendingFix, Rule, RuntimeReport, cst

Json = dict[str, Any]
# How far up the call chain a helper's model is followed to a caller that sets eval.
_CALLER_DEPTH = 3
# Words of a function that switches to training mode at test time on purpose: Monte
# Carlo dropout sampling, statistics adaptation.
_TRAIN_MODE_ON_PURPOSE = re.compile(r"dropout|monte|\bmc_|_mc\b|adabn|adapt", re.IGNORECASE)


# A loader named for training data: `train_loader`, `trainloader`, `loader_train`.
_TRAINING_LOADER = re.compile(r"train", re.IGNORECASE)


class EvalModeMissing(Rule):
    code = "BN002"
    name = "eval-mode-missing"
    severity = Severity.ERROR
    triggers = (
        "no_grad",
        "inference_mode",
        "val",
        "test",
        "eval",
        "pred",
        "infer",
        "load_state_dict",
        "pretrained",
        "weights=",
    )
    # An evaluation context: no_grad/inference_mode, a function named for evaluation, a
    # loop over a loader named for validation/test (or its `tqdm(...)`/`enumerate(...)`),
    # weights loaded or released weights asked for. Every branch starts with a literal,
    # so the search skips ahead quickly (a `^` anchor made each position try them all).
    trigger_pattern = (
        r"no_grad|inference_mode|load_state_dict|pretrained|weights="
        r"|def[ \t]+\w*(?i:eval|val|test|pred|infer)"
        r"|for[ \t][^:\n]*(?i:val|test|eval|dev)"
        r"|(?:tqdm|enumerate|iter)\(\w*(?i:val|test|eval|dev)"
    )
    needs_index = True
    options_widening_triggers = ("eval-function-names",)
    autofix = "unsafe"
    engines = ("static", "runtime")
    runtime_events = (BatchNormCall,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, BatchNormCall) or not event.updates_running_stats:
            return
        if (event.grad_enabled and not event.inference_mode) or event.stats_reestimation:
            return
        context = "inference_mode" if event.inference_mode else "no_grad"
        yield RuntimeReport(
            message=f"BatchNorm `{event.module.path}` runs in training mode under "
            f"`{context}`: evaluation uses batch statistics and overwrites the running "
            "statistics with evaluation data",
            suggestion="call `model.eval()` before evaluating and `model.train()` after",
            subject=f"{event.module.path}:{context}",
        )

    VALID = (
        "import torch, torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "model.eval()\n"
        "with torch.no_grad():\n    out = model(x)\n",
    )
    INVALID = (
        Invalid(
            "import torch, torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "with torch.no_grad():\n    out = model(x)\n"
        ),
        Invalid(
            "import torch\n"
            "def score(model, val_loader):\n"
            "    with torch.no_grad():\n"
            "        for x, y in val_loader:\n"
            "            model.train()\n"
            "            hits = (model(x).argmax(1) == y).sum()\n",
            fixed="import torch\n"
            "def score(model, val_loader):\n"
            "    with torch.no_grad():\n"
            "        for x, y in val_loader:\n"
            "            model.eval()\n"
            "            hits = (model(x).argmax(1) == y).sum()\n",
        ),
    )

    def check_module(self) -> None:
        if self.context.options.get("transductive-batchnorm"):
            return
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        path = self.context.path
        extra = tuple(self.context.options.get("eval-function-names") or ())
        # A script that never trains runs the weights it loads for predictions (the
        # source is searched only once a forward needs it: most files have none).
        trains: list[bool] = []
        for function, facts in index.functions(path):
            short = function.rsplit(".", 1)[-1]
            if RE_ESTIMATION.search(short) or self._lightning(index, path, facts, short):
                continue
            named = is_eval_function(function, extra)
            # A model's own `predict(x)`/`inference(x)` on a batch it is given: whoever
            # calls it owns the mode (a method that loops over a loader evaluates).
            own_method = bool(facts.get("owner")) and is_module_class(index, path, facts["owner"])
            reported: set[str] = set()
            for position, event in enumerate(facts["events"]):
                key = event.get("key")
                if event["k"] != "forward" or key is None or key in reported or event.get("dummy"):
                    continue
                if dummy_input(facts, event) or (
                    own_method
                    and not event.get("iter")
                    and (key == "self" or key.startswith("self."))
                ):
                    continue
                iterated = event.get("iter", [])
                # Known evaluation: no grad, batches of a validation/test loader, or
                # trained weights loaded and run by a script that never trains.
                by_context = bool(
                    facts.get("nograd")
                    or event.get("nograd")
                    or any(EVAL_LOADER.search(i) for i in iterated)
                )
                inference = (
                    not by_context
                    and not self._trains(trains)
                    and loaded_for_inference(facts, position, key)
                )
                known = by_context or inference
                if not known and "loop" in event:
                    # One epoch function for both phases: `run_epoch(model, val_loader)`.
                    shared = self._shared_step(index, function, facts, event, key)
                    if shared is False:
                        continue
                    if shared is True:
                        reported.add(key)
                        self._report(event, key, function, None, False)
                        continue
                if not (known or named) or self._in_training_loop(facts, event):
                    continue
                if not named and self._over_training_data(index, function, facts, event):
                    continue
                kind = index.key_kind(path, function, key)
                if kind is None and by_context:
                    # The model's kind is unknown, but the code itself asks for training
                    # mode in the middle of an evaluation: that call is the evidence.
                    switch = explicit_train_in_evaluation(facts, position, key, named)
                    if switch is not None and self._not_on_purpose(facts):
                        reported.add(key)
                        self._report_train_call(switch, event, key, function)
                    continue
                if kind != "bn":
                    continue
                events = facts["events"]
                mode = mode_through_lists(index, path, function, events, position, key)
                mode = mode or mode_before(index, path, function, events, position, key)
                if mode == "unknown" or (mode is None and built_in_eval(index, path, facts, key)):
                    continue
                if mode == "train" and inference and not named:
                    # A script that loads weights and puts the model in training mode on
                    # purpose (AdaBN-style statistics adaptation) is not a forgotten eval.
                    continue
                if mode == "eval" or (
                    mode is None and self._every_caller_sets_eval(index, function, facts, key)
                ):
                    continue
                reported.add(key)
                certain = known and certainly_bn(index, path, function, key)
                self._report(event, key, function, mode, certain)

    def _not_on_purpose(self, facts: Json) -> bool:
        """The function does not speak of Monte Carlo dropout or statistics adaptation,
        where training mode at test time is the point."""
        first, last = facts["pos"][0], facts["pos"][2]
        lines = self.context.source.splitlines()[first - 1 : last]
        return not any(_TRAIN_MODE_ON_PURPOSE.search(line) for line in lines)

    def _trains(self, memo: list[bool]) -> bool:
        """Whether this file trains a model (`script_trains`), searched once per file."""
        if not memo:
            memo.append(script_trains(self.context.source))
        return memo[0]

    def _lightning(self, index: ProjectIndex, path: str, facts: Json, name: str) -> bool:
        """Lightning-style hooks: the trainer sets the mode around them."""
        if name.endswith(("_step", "_epoch_end", "_batch_end")) or name.startswith("on_"):
            return True
        owner = facts.get("owner")
        if not owner:
            return False
        bases = index.class_info(path, owner)["bases"]
        return any(
            "Lightning" in base or (base.endswith("Module") and "pl." in base) for base in bases
        )

    def _in_training_loop(self, facts: Json, event: Json) -> bool:
        """A forward in a loop that calls backward() is part of the training step, also
        under no_grad (a GAN's generator while the discriminator trains), unless it runs
        on validation or test data (`model(val_images)` every N steps)."""
        if "loop" not in event or not facts["loops"][event["loop"]]["backward"]:
            return False
        return not (event.get("nograd") and EVAL_LOADER.search(event.get("input", "")))

    def _over_training_data(
        self, index: ProjectIndex, function: str, facts: Json, event: Json
    ) -> bool:
        """A pass over the training loader without gradients, in a function not named
        for evaluation, is part of training, not an evaluation: a memory bank or
        clustering features filled before an epoch (DeepCluster's `init_memory`), whose
        embeddings must match the training forward's. True when the loop iterates a
        loader parameter and every caller passes a loader named for training."""
        params = call_parameters(facts)
        # The loops around the forward, outermost first: the loader is one of them.
        loaders = [name for name in event.get("iter", []) if name in params]
        if len(loaders) != 1:
            return False
        loader = loaders[0]
        callers = index.callers(self.context.path, function)
        if not callers:
            return False
        for _, _, call in callers:
            passed = argument_key(call, params, loader)
            name = passed.split(".")[-1] if passed else ""
            if not _TRAINING_LOADER.search(name) or EVAL_LOADER.search(name):
                return False
        return True

    def _shared_step(
        self, index: ProjectIndex, function: str, facts: Json, event: Json, key: str
    ) -> bool | None:
        """A step function that loops over a loader parameter, called with a loader
        named for validation or test: True when a BN model runs there in training mode
        (no eval before that call), False when that call is in eval, None when the
        function is not such a shared step."""
        loop = facts["loops"][event["loop"]]
        loader = (loop.get("iter") or "").split(".")[0]
        params = call_parameters(facts)
        root = key.split(".")[0]
        if loader not in params or (root not in params and root != "self"):
            return None
        events = facts["events"]
        if any(
            e["k"] in ("setmode", "eval", "train") and e.get("key") and related(e["key"], key)
            for e in events
        ):
            return None  # the function sets the mode itself (`model.train(mode=training)`)
        evaluating = []
        for caller_path, caller, call in index.callers(self.context.path, function):
            passed_loader = argument_key(call, params, loader)
            if passed_loader is None or not EVAL_LOADER.search(passed_loader.split(".")[-1]):
                continue
            caller_facts = index.function_facts(caller_path, caller)
            passed = key if root == "self" else argument_key(call, params, root)
            if caller_facts is None or passed is None:
                return None
            if root != "self" and "." in key:
                passed = passed + key[len(root) :]
            if index.key_kind(caller_path, caller, passed) != "bn":
                return None
            position = caller_facts["events"].index(call)
            evaluating.append(
                mode_before(index, caller_path, caller, caller_facts["events"], position, passed)
            )
        if not evaluating:
            return None
        return any(mode != "eval" for mode in evaluating) and "unknown" not in evaluating

    def _every_caller_sets_eval(
        self,
        index: ProjectIndex,
        function: str,
        facts: Json,
        key: str,
        path: str | None = None,
        depth: int = 0,
    ) -> bool:
        """Every call of `function` in the project passes the model in eval: set before
        the call, or (for a helper that hands its own parameter on) by every caller of
        that helper in turn (`test()` calls `model.eval()`, then `benchmark(model)`,
        which calls `validation(model)`)."""
        path = path or self.context.path
        root = key.split(".")[0]
        params = call_parameters(facts)
        # A closure's model is its enclosing function's, under the same name.
        closure = enclosing_function(function) is not None and root not in facts["bindings"]
        if root not in params and root != "self" and not closure:
            return False
        callers = index.callers(path, function)
        if not callers or depth > _CALLER_DEPTH:
            return False
        for caller_path, caller, event in callers:
            caller_facts = index.function_facts(caller_path, caller)
            if caller_facts is None:
                return False
            passed = key if root == "self" or closure else argument_key(event, params, root)
            if passed is None:
                return False
            if root != "self" and not closure and "." in key:
                passed = passed + key[len(root) :]
            position = caller_facts["events"].index(event)
            mode = mode_before(index, caller_path, caller, caller_facts["events"], position, passed)
            if mode == "eval":
                continue
            if mode is not None or (caller_path, caller) == (path, function):
                return False
            if not self._every_caller_sets_eval(
                index, caller, caller_facts, passed, caller_path, depth + 1
            ):
                return False
        return True

    def _report_train_call(self, switch: Json, forward: Json, key: str, function: str) -> None:
        """At the `.train()` an evaluation makes before running a model of unknown kind:
        a warning that does not claim BatchNorm, and an unsafe fix that asks for eval
        mode instead."""
        node = node_at(self.context.module, switch["pos"], cst.Call)
        if not isinstance(node, cst.Call):
            return
        where = "at module level" if function == "<module>" else f"in `{function}`"
        fix = None
        if isinstance(node.func, cst.Attribute) and not node.args:
            fix = PendingFix(
                Applicability.UNSAFE,
                f"Call `{key}.eval()` instead of `{key}.train()`",
                (NodeEdit(node.func.attr, "replace", "eval"),),
            )
        self.report(
            node,
            message=(
                f"`{key}.train()` switches `{key}` to training mode inside an evaluation "
                f"{where} (gradients off, line {forward['pos'][0]} runs it next): if "
                "the model has BatchNorm or Dropout, the evaluation uses batch statistics "
                "and random dropout, and BatchNorm's running statistics are overwritten "
                "with evaluation data"
            ),
            suggestion=(
                f"call `{key}.eval()` here instead (or remove the call after a `{key}.eval()` "
                f"before the evaluation), and `{key}.train()` when training resumes"
            ),
            fix=fix,
            severity=Severity.WARNING,
        )

    def _report(
        self, event: Json, key: str, function: str, mode: str | None, certain: bool
    ) -> None:
        node = node_at(self.context.module, event["pos"], cst.Call)
        if node is None:
            return
        where = "at module level" if function == "<module>" else f"in `{function}`"
        why = "after an explicit `.train()`" if mode == "train" else "with no `.eval()` before it"
        self.report(
            node,
            message=(
                f"`{key}` has BatchNorm layers and is run for evaluation {where} {why}: "
                "BatchNorm uses batch statistics and overwrites its running statistics"
            ),
            suggestion=(
                f"call `{key}.eval()` before line {event['pos'][0]} and `{key}.train()` "
                "when training resumes"
            ),
            # An error only when every value of the key has BN and the context surely
            # evaluates; a name-only context or a possible BN model is a warning.
            severity=None if certain else Severity.WARNING,
        )
