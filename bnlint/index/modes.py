"""Questions about training/evaluation code that several rules ask: which loaders feed
a training loop, what batch size a loader gets, which loaders train BatchNorm on small
batches (BN016, BN031, BN038), whether a function evaluates, what part of a model a key
names.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bnlint.index import kinds, loaders
from bnlint.index.project import (
    Kind,
    ProjectIndex,
    mode_before,
    related,
)
from bnlint.index.steppers import stepped_models

Json = dict[str, Any]

EVAL_FUNCTION = re.compile(
    r"(^|_)(eval|evaluate|evaluation|val|valid|validate|validation|test|testing|predict|"
    r"prediction|infer|inference)(_|$|\d)",
    re.IGNORECASE,
)
EVAL_LOADER = re.compile(r"(^|_|\.)(val|valid|validation|test|eval|dev)", re.IGNORECASE)
# Functions that run BN in training mode on purpose: statistics re-estimation
# (update_bn, PreciseBN), test-time adaptation (TENT, AdaBN), SWA.
RE_ESTIMATION = re.compile(
    r"(bn|batchnorm|stat|calib|adapt|tent|tta|swa|precise|recompute)", re.IGNORECASE
)
# Sub-modules of torchvision/timm BN models that contain BN.
_BN_SUBMODULES = frozenset(
    {
        "features",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "backbone",
        "encoder",
        "blocks",
        "stages",
        "stem",
        "body",
    }
)


def is_eval_function(name: str, extra_patterns: Sequence[str] = ()) -> bool:
    short = name.rsplit(".", 1)[-1]
    if EVAL_FUNCTION.search(short):
        return True
    return any(fnmatch.fnmatch(short, pattern) for pattern in extra_patterns)


def batch_size(
    index: ProjectIndex, path: str, facts: Json, loader: Json, function: str | None = None
) -> Any:
    """The loader's batch size when known statically: the literal, the default 1 when
    `batch_size` is absent, a module constant, a config dict entry, an argparse option
    default (in any file of the project), or a parameter: what its callers pass (when
    `function` is given) or its default. "?" when unknown."""
    value = loader["batch"]
    if "generator" in loader:
        value = loaders.generator_batch(index, path, loader["generator"])
    if value == "missing":
        return 1
    if isinstance(value, dict):
        summary = index.summaries[path]
        if "param" in value:
            keys = tuple(value.get("keys", ()))
            if function is not None:
                return loaders.parameter_batch_size(
                    index, path, function, facts, value["param"], keys
                )
            return loaders.item_of(facts["defaults"].get(value["param"], "?"), keys)
        if "returned" in value:
            if function is None:
                return "?"
            keys = tuple(value["keys"])
            return loaders.returned_item(index, path, function, value["returned"], keys)
        if "name" in value:
            alias = summary.aliases.get(value["name"])
            return alias.get("const", "?") if isinstance(alias, dict) else "?"
        if "option" in value:
            declared = loaders.argparse_default(index, path, value["option"])
            return "?" if declared is None else declared[0]
    return value


def training_loops(
    index: ProjectIndex, path: str, function: str, facts: Json, key: str
) -> Iterator[tuple[str, str, Json, Json]]:
    """Loops that call `backward()` while drawing from the loader `key`, wherever it
    reaches (bnlint.index.loaders). Yields (path, function, facts, loop)."""
    return loaders.training_loops(index, path, function, facts, key)


def part_kind(index: ProjectIndex, path: str, function: str, key: str) -> Kind:
    """Kind of the module a key names: the model itself (`model`, `self.model`) or a
    named part of it (`model.backbone`, `model.layer4`)."""
    parts = key.split(".")
    root_length = 2 if parts[0] == "self" else 1
    if len(parts) <= root_length:
        return index.key_kind(path, function, key)
    root = ".".join(parts[:root_length])
    attr = parts[root_length]
    facts = index.function_facts(path, function)
    if facts is None:
        return None
    for binding in facts["bindings"].get(root, []):
        spec = binding.get("spec")
        if spec is None:
            continue
        found = index.lookup(path, spec.get("call"))
        if found is not None and found[1] == "class":
            layers = index.class_layers(found[0], found[2])
            if attr in layers and len(parts) == root_length + 1:
                return index.spec_kind(layers[attr][0], layers[attr][1])
            return None
        library = index.library_name(path, spec.get("call"))
        if kinds.factory_kind(library, spec.get("arg0")) == "bn" and attr in _BN_SUBMODULES:
            return "bn"
    return None


def trained_bn_model(
    index: ProjectIndex, path: str, function: str, facts: Json, loop: Json
) -> str | None:
    """The model with trainable BatchNorm that `loop` (a training loop) runs forward, if
    any: a BN model not left in eval for the whole loop."""
    for model in dict.fromkeys(
        [
            *loop["forwards"],
            *_module_objects_called(index, path, facts, loop),
            *stepped_models(index, path, function, facts, loop),
        ]
    ):
        if index.key_kind(path, function, model) != "bn":
            continue
        if mode_before(index, path, function, facts["events"], loop["first"], model) == "eval":
            body = facts["events"][loop["first"] : loop["last"]]
            if not any(
                e["k"] == "train" and e.get("key") == model for e in body
            ) and not _train_in_other_branch(facts, loop["first"], model):
                continue
        return str(model)
    return None


def _module_objects_called(index: ProjectIndex, path: str, facts: Json, loop: Json) -> list[str]:
    """Module-level objects a function's loop calls (`net(x)` in `def train():` of a
    script that builds `net` at the top): the index records them by name only."""
    module = index.function_facts(path, "<module>")
    if module is None or module is facts:
        return []
    return [
        event["fn"]
        for event in facts["events"][loop["first"] : loop["last"]]
        if event["k"] == "opaque" and event.get("fn") in module["bindings"]
    ]


def _train_in_other_branch(facts: Json, position: int, model: str) -> bool:
    """`if phase == "train": model.train() else: model.eval()` before a loop shared
    by both phases: the last `.eval()` is one branch, a `.train()` the other."""
    events = facts["events"]
    last_eval = next(
        (
            i
            for i in range(position - 1, -1, -1)
            if events[i]["k"] == "eval" and events[i].get("key") == model
        ),
        None,
    )
    if last_eval is None:
        return False
    for block in facts.get("blocks", ()):
        if block["k"] != "if" or not block["first"] <= last_eval < block["last"]:
            continue
        arm = (
            range(block["mid"], block["last"])
            if last_eval < block["mid"]
            else range(block["first"], block["mid"])
        )
        if any(events[i]["k"] == "train" and events[i].get("key") == model for i in arm):
            return True
    return False


THRESHOLD_OPTION = "small-batch-threshold"
DEFAULT_SMALL_BATCH = 8
# SyncBatchNorm in any spelling: the class, `convert_sync_batchnorm`, apex's
# `convert_syncbn_model`, a `--sync-bn` flag, Lightning's `sync_batchnorm=True`.
SYNC_BATCHNORM = re.compile(r"sync[-_]?b(?:atch[-_]?)?n", re.IGNORECASE)
DISTRIBUTED = re.compile(r"DistributedDataParallel|\bDDP\s*\(")


def small_batch_threshold(options: Any) -> int:
    """The `small-batch-threshold` option (BN016, BN031, BN038 share it)."""
    value = options.get(THRESHOLD_OPTION, DEFAULT_SMALL_BATCH)
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_SMALL_BATCH


@dataclass(frozen=True)
class SmallTrainingLoader:
    """A loader of this file with a statically known batch size that feeds a training
    loop of a model with trainable BatchNorm."""

    function: str  # where the loader is created ("<module>" for script code)
    key: str
    loader: Json  # the index's loader facts: pos, batch, ...
    size: int
    loop_path: str
    loop_function: str
    loop: Json
    model: str  # the model's key inside `loop_function`

    @property
    def line(self) -> int:
        return int(self.loader["pos"][0])


def small_training_loaders(
    index: ProjectIndex,
    path: str,
    largest: int,
    smallest: int = 1,
    parameter_defaults: bool = True,
) -> Iterator[SmallTrainingLoader]:
    """Loaders of `path` whose batch size is known and within [smallest, largest], each
    with the first training loop it feeds on a model whose BatchNorm trains.
    `parameter_defaults=False` leaves out batch sizes read from a function parameter's
    default (a caller may pass another value)."""
    for function, facts, key, loader in loaders.file_loaders(index, path):
        batch = loader["batch"]
        if not parameter_defaults and isinstance(batch, dict) and "param" in batch:
            continue
        size = batch_size(index, path, facts, loader, function)
        if not isinstance(size, int) or isinstance(size, bool):
            continue
        if not smallest <= size <= largest:
            continue
        for loop_path, loop_function, loop_facts, loop in training_loops(
            index, path, function, facts, key
        ):
            model = trained_bn_model(index, loop_path, loop_function, loop_facts, loop)
            if model is None or batchnorm_frozen_in(loop_facts, model):
                continue
            yield SmallTrainingLoader(
                function, key, loader, size, loop_path, loop_function, loop, model
            )
            break


def batchnorm_frozen_in(facts: Json, model: str) -> bool:
    """The function puts the model's BN layers in eval (`model.apply(set_bn_eval)`, a
    loop calling `m.eval()` on BN modules) or freezes its parameters somewhere: its BN
    may not train, so the small batch is not known to matter."""
    return any(
        event["k"] in ("bn_eval", "freeze") and event.get("key") and related(event["key"], model)
        for event in facts["events"]
    )
