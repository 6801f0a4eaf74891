"""Training a BatchNorm model on batches of one.

## What it does
Checks for a `DataLoader` whose batch size is 1 and that feeds a loop calling
`backward()` on a model with trainable BatchNorm. The 1 may be a literal, a missing
`batch_size` (the default is 1; not for a project DataLoader subclass), a module
constant, an entry of a config dict or of a `**kwargs` dict literal, a function
parameter (what every caller passes, or its default), an item of a parameter
(`opts["batch_size"]`, read in the dict literal or the section `cfg["data"]` that the
callers pass, unless the dict is written or `update()`d before the call), an item of
a config dict a project function assembles and returns (`cfg = {}`,
`cfg.update(defaults())`, `cfg.update(loaded.config)` of a project file loaded by path
from a literal or an argparse default: `update()` is shallow, the last part holding the
section decides, a part bnlint cannot read makes it unknown), or an argparse option's
default in any file of the project. An option declared in another file is reported at
its `default=1`, and a 1 written in another file's config dict at that entry: the line
to change. The loader is followed wherever it
goes: returned by a factory (alone, in a tuple, a list or a dict, also bound whole and
indexed, and wrapped in a list literal: `folds = [make_fold()]` → `folds[0][0]`), kept
in a dict, read back by a literal index (`loader = self.folds[0][0]`), a module global
read by a `train()` function, an attribute on `self` or passed to a trainer's
constructor, passed to project functions, wrapped by `tqdm`/`enumerate`/`iter` or drawn
with `next()`. A model chosen by name (`globals()[arch]`, `getattr(models, arch)`, a
dict of constructors, an if/elif chain on a backbone name) is the one its statically
known name picks, or a BN model when every candidate has BN. A Keras-style batch
generator (`Generator(lines).generate()`, a project method that yields when a count
reaches `self.batch_size`) is a loader of the constructor's batch size (default
included), and a loop whose training step is a method of a helper built with the model
(`trainer = Trainer(model, opt)`, `trainer.train_step(x)` calling `backward()`) trains
that model; a plain trainer's loop calling `self.model.step(batch, "train")` on the
object it was given trains that object when every class it may be (each branch that
builds it) has a `step` calling `backward()` for that phase (`if phase == "train":`),
and a wrapper that builds its network from a class passed to it (`Wrapper(cfg, Net)`,
also through `super().__init__`) is a BN model when that class is. Loaders only iterated for
evaluation, frozen BN (`FrozenBatchNorm2d`, `norm_eval`, detection models) and models
not known to have BN stay silent.

The runtime check reads the input shape of every training-mode BatchNorm forward:
one value per channel (N x spatial == 1, where torch raises) is an error, recorded
before torch raises so `bnlint run` still reports it; a batch of one with larger
maps (BN silently normalises each sample by itself) is a warning. Eval-mode forwards
of any size are fine.

## Why is this bad?
In training mode BN normalises each channel with the statistics of the current batch.
With one sample and spatial size 1 (BatchNorm1d, BN after global pooling) torch raises
"Expected more than 1 value per channel when training"; with larger maps BN silently
normalises each sample by itself, the running statistics become noisy, and eval
results drift away from training (P07, P08).

## Example
```python
train_loader = DataLoader(train_set, shuffle=True)
for images, labels in train_loader:
    loss = criterion(model(images), labels)
    loss.backward()
```

## Use instead
```python
train_loader = DataLoader(train_set, batch_size=32, shuffle=True, drop_last=True)
```

## Fix safety
No automatic fix: the right batch size depends on memory, and GroupNorm or frozen BN
are alternatives.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from bnlint.events import BatchNormCall, Event, TrainingLoaderEpoch
from bnlint.finding import Severity
from bnlint.index.loaders import argparse_default, display_name, file_loaders
from bnlint.index.locate import node_at
from bnlint.index.merged_dicts import ConfigValue, literal_at, same_file
from bnlint.index.modes import batch_size, trained_bn_model, training_loops
from bnlint.index.project import ProjectIndex
from bnlint.index.summary import Positions
from bnlint.rule import Invalid, Rule, RuntimeReport, cst

Json = dict[str, Any]


class BatchSizeOne(Rule):
    code = "BN003"
    name = "batch-size-one"
    severity = Severity.ERROR
    # An argparse default of 1 in an options file counts too (see `_check_options`).
    # "enerat": Keras-style batch generators (`Generator(...).generate()`,
    # `DataGenerator`), the names such loaders conventionally carry; only a pre-filter,
    # the loader itself is read from the class's code (bnlint.index.batch_generators).
    # "batch": a config dict another file's loader reads its batch size from
    # (`_check_config_values`).
    triggers = ("DataLoader", "add_argument", "enerat", "batch")
    needs_index = True
    engines = ("static", "runtime")
    runtime_events = (BatchNormCall, TrainingLoaderEpoch)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if isinstance(event, TrainingLoaderEpoch):
            yield from cls._check_loader(event)
            return
        if not isinstance(event, BatchNormCall) or not event.training:
            return
        values = event.values_per_channel
        if values is None or event.input_shape is None or event.input_shape[0] != 1:
            return
        shape = tuple(event.input_shape)
        if values == 1:
            yield RuntimeReport(
                message=f"BatchNorm `{event.module.path}` is trained on one value per channel "
                f'(input shape {shape}): torch raises "Expected more than 1 value per '
                'channel when training"',
                suggestion="use a larger batch or `drop_last=True`; for a pretrained backbone, "
                "keep BN frozen (eval or FrozenBatchNorm2d)",
                subject=event.module.path,
            )
        else:
            yield RuntimeReport(
                message=f"BatchNorm `{event.module.path}` is trained on a batch of one "
                f"(input shape {shape}): each sample is normalised by itself and the "
                "running statistics become noisy",
                suggestion="use a larger batch or `drop_last=True`, or GroupNorm/LayerNorm",
                subject=event.module.path,
                severity=Severity.WARNING,
            )

    @classmethod
    def _check_loader(cls, event: TrainingLoaderEpoch) -> Iterator[RuntimeReport]:
        if event.drop_last or event.batch_size <= 1 or event.last_batch != 1:
            return
        yield RuntimeReport(
            message=f"this training loader yields {event.samples} samples per epoch on this "
            f"rank in batches of {event.batch_size} with `drop_last=False`: its last batch "
            "has one sample, and BatchNorm cannot train on it",
            suggestion="pass `drop_last=True` to the training DataLoader, or change the batch size",
            subject=f"loader:{event.samples}:{event.batch_size}",
            at="site" if event.site is not None else "call",
            site=event.site,
            severity=Severity.WARNING,
        )

    VALID = (
        "import torch\nfrom torch.utils.data import DataLoader\nimport torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "loader = DataLoader(ds, batch_size=32)\n"
        "for x, y in loader:\n    model(x).sum().backward()\n",
    )
    INVALID = (
        Invalid(
            "import torch\nfrom torch.utils.data import DataLoader\nimport torchvision\n"
            "model = torchvision.models.resnet18()\n"
            "loader = DataLoader(ds, batch_size=1)\n"
            "for x, y in loader:\n    model(x).sum().backward()\n"
        ),
    )

    def check_module(self) -> None:
        index, _ = self.context.index.with_file(self.context.path, self.context.source)
        path = self.context.path
        for function, facts, key, loader in file_loaders(index, path):
            size = batch_size(index, path, facts, loader, function)
            if size != 1 or _option_elsewhere(index, path, loader) or _config_elsewhere(size, path):
                continue
            for loop_path, loop_function, loop_facts, loop in training_loops(
                index, path, function, facts, key
            ):
                model = trained_bn_model(index, loop_path, loop_function, loop_facts, loop)
                if model is not None:
                    self._report(loader, display_name(key, function), model, loop_function, loop)
                    break
        self._check_options(index, path)
        self._check_config_values(index, path)

    def _check_options(self, index: ProjectIndex, path: str) -> None:
        """An argparse option of this file whose default 1 is the batch size of a
        training loader made in another file: the default is the line to change."""
        ones = {
            option
            for _, facts in index.functions(path)
            for option, default in facts.get("argparse", {}).items()
            if default == 1 and not isinstance(default, bool)
        }
        if not ones:
            return
        for other in index.summaries:
            if other == path:
                continue
            for function, facts, key, loader in file_loaders(index, other):
                option = (
                    loader["batch"].get("option") if isinstance(loader["batch"], dict) else None
                )
                if not isinstance(option, str) or option not in ones:
                    continue
                declared = argparse_default(index, other, option)
                if declared is None or declared[1] != path or declared[0] != 1:
                    continue
                for loop_path, loop_function, loop_facts, loop in training_loops(
                    index, other, function, facts, key
                ):
                    model = trained_bn_model(index, loop_path, loop_function, loop_facts, loop)
                    if model is not None:
                        name = display_name(key, function)
                        self._report_option(option, declared[2], other, loader, name, model)
                        ones.discard(option)
                        break

    def _check_config_values(self, index: ProjectIndex, path: str) -> None:
        """A 1 in a config dict this file builds (a function's returned dict, a module
        dict another file loads by path) that is the batch size of a training loader
        made in another file: the dict entry is the line to change."""
        if not _writes_a_one(index, path):
            return
        tree: ast.Module | None = None
        reported: set[tuple[str, tuple[str, ...]]] = set()
        for other in index.summaries:
            if same_file(other, path):
                continue
            for function, facts, key, loader in file_loaders(index, other):
                batch = loader["batch"]
                if not isinstance(batch, dict) or not ("param" in batch or "returned" in batch):
                    continue
                size = batch_size(index, other, facts, loader, function)
                if not isinstance(size, ConfigValue) or size != 1:
                    continue
                if not same_file(size.origin[0], path) or size.origin[1:] in reported:
                    continue
                for loop_path, loop_function, loop_facts, loop in training_loops(
                    index, other, function, facts, key
                ):
                    model = trained_bn_model(index, loop_path, loop_function, loop_facts, loop)
                    if model is None:
                        continue
                    tree = tree or ast.parse(self.context.source)
                    literal = literal_at(tree, size.origin[1], size.origin[2])
                    if literal is not None:
                        reported.add(size.origin[1:])
                        name = display_name(key, function)
                        self._report_config(literal, size.origin[2], other, loader, name, model)
                    break

    def _report_config(
        self,
        literal: ast.expr,
        keys: tuple[str, ...],
        other: str,
        loader: Json,
        key: str,
        model: str,
    ) -> None:
        node = node_at(self.context.module, Positions(self.context.source).of(literal))
        if node is None:
            return
        entry = "".join(f"[{k!r}]" for k in keys)
        self.report(
            node,
            message=(
                f"the 1 at `{entry}` of this config is the batch size of {key} "
                f"({other}:{loader['pos'][0]}), which feeds the training loop of `{model}`: "
                "BatchNorm trains on batches of one"
            ),
            suggestion=(
                "use a larger batch size with `drop_last=True`, or GroupNorm/LayerNorm, "
                "or frozen BatchNorm for a pretrained backbone"
            ),
        )

    def _report_option(
        self, option: str, at: list[int], other: str, loader: Json, key: str, model: str
    ) -> None:
        node = node_at(self.context.module, at, cst.Call)
        if node is None:
            return
        self.report(
            node,
            message=(
                f"the default 1 of option `{option}` is the batch size of {key} "
                f"({other}:{loader['pos'][0]}), which feeds the training loop of `{model}`: "
                "BatchNorm trains on batches of one"
            ),
            suggestion=(
                "use a larger default batch size with `drop_last=True`, or GroupNorm/LayerNorm, "
                "or frozen BatchNorm for a pretrained backbone"
            ),
        )

    def _report(self, loader: dict, key: str, model: str, function: str, loop: dict) -> None:  # type: ignore[type-arg]
        node = node_at(self.context.module, loader["pos"], cst.Call)
        if node is None:
            return
        where = "" if function == "<module>" else f" in `{function}`"
        self.report(
            node,
            message=(
                f"{key} yields batches of 1 and feeds the training loop{where} "
                f"(line {loop['pos'][0]}) of `{model}`, which trains BatchNorm"
            ),
            suggestion=(
                "pass a larger `batch_size` to the generator's constructor"
                if "generator" in loader
                else "use a larger `batch_size` with `drop_last=True`"
            )
            + ", or GroupNorm/LayerNorm, or frozen BatchNorm for a pretrained backbone",
        )


def _config_elsewhere(size: Any, path: str) -> bool:
    """The batch size is written in a config dict of another file: it is reported
    there (`_check_config_values`), not twice."""
    return isinstance(size, ConfigValue) and not same_file(size.origin[0], path)


def _writes_a_one(index: ProjectIndex, path: str) -> bool:
    """This file builds a config dict (returned by a function, or a module dict) that
    holds the integer 1 somewhere: a cheap gate before looking at other files."""
    summary = index.summaries.get(path)
    if summary is None:
        return False
    dicts: list[Any] = [
        part.get("dict")
        for _, facts in index.functions(path)
        for part in facts.get("returned_dict", ())
    ]
    dicts += [a.get("dict") for a in summary.aliases.values() if isinstance(a, dict)]
    return any(_holds_one(entries) for entries in dicts)


def _holds_one(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_one(v) for v in value.values())
    return value == 1 and not isinstance(value, bool)


def _option_elsewhere(index: ProjectIndex, path: str, loader: Json) -> bool:
    """The batch size is an argparse default declared in another file: it is reported
    there, at the line to change (`_check_options`), not twice."""
    batch = loader["batch"]
    if not isinstance(batch, dict) or "option" not in batch:
        return False
    declared = argparse_default(index, path, batch["option"])
    return declared is not None and declared[1] != path
