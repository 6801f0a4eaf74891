"""BatchNorm as the last transform before a model's output.

## What it does
Checks for a model whose output comes straight out of a BatchNorm placed after the
final `Linear`/`Conv`: an `nn.Sequential` model ending in `Linear, BatchNorm1d` (maybe
followed by an activation), or a `forward` that returns `self.bn(self.fc(x))`, possibly
through a final activation such as `torch.sigmoid`. Only objects used as models in the
project count (instantiated, then trained, evaluated or optimised), so building blocks
that end in BN are not flagged. Projection/embedding heads and necks (names with proj,
neck, embed, feat, bottleneck, also in the width the BN is built with, such as
`BatchNorm1d(embedding_size)`) and `affine=False` BN are left alone: BN there is by
design (SimCLR/MoCo heads, re-ID BNNeck, ArcFace-style face embeddings). A width named
for classes (`BatchNorm1d(num_classes)`) marks class scores whatever the other names.
A `forward` that returns a tuple is judged by its first result (`return logits, feats`);
a head grafted onto a library classifier (`model.fc = nn.Sequential(..., nn.BatchNorm1d(
num_classes))`, also `self.backbone.fc = ...` in a model class) is its output layer;
a BatchNorm whose output is only reshaped or globally pooled (`conv -> BN -> pool ->
flatten`, without a hidden activation) still makes the scores; test files are skipped.

The runtime check looks at the first call of each traced model: when the tensor it
returns is the very tensor a BatchNorm produced (or the output of one element-wise
activation module applied to it), it reports the BatchNorm, with the same exceptions.

## Why is this bad?
Normalising the prediction pushes every output unit towards batch mean 0 and
variance 1: regression targets fit poorly, the logits fed to sigmoid/softmax become
batch dependent, and single-sample predictions at eval depend on the running
statistics rather than the input (P28; DCGAN's guidelines drop BN at the generator's
output for the same reason).

## Example
```python
model = nn.Sequential(
    nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(),
    nn.Linear(64, 1), nn.BatchNorm1d(1),
)
```

## Use instead
```python
model = nn.Sequential(
    nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(),
    nn.Linear(64, 1),
)
```

## Fix safety
No automatic fix: removing a layer changes the model and its checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bnlint.events import Event, ModelOutput
from bnlint.finding import Severity
from bnlint.index import ProjectIndex, kinds
from bnlint.index.graph import (
    is_head_name,
    leaf,
    model_instances,
    names_an_embedding,
    used_as_model,
)
from bnlint.index.locate import node_at
from bnlint.index.provenance import is_test_file
from bnlint.index.summary import CLASSIFIER_ATTRIBUTES
from bnlint.rule import Invalid, Rule, RuntimeReport, cst

Json = dict[str, Any]


class OutputBatchnorm(Rule):
    code = "BN001"
    name = "output-batchnorm"
    severity = Severity.WARNING
    triggers = ("Norm", "BN", "bn")
    # The reported BN is built in this file, by a class whose own `forward` returns it
    # or in a `Sequential`: files with neither cannot hold the misuse.
    trigger_pattern = r"^[ \t]*def[ \t]+forward\b|Sequential"
    needs_index = True
    engines = ("static", "runtime")
    runtime_events = (ModelOutput,)

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterator[RuntimeReport]:
        if not isinstance(event, ModelOutput) or event.batchnorm_output is None:
            return
        bn = event.batchnorm_output
        if not bn.affine or is_head_name(bn.path):
            return
        through = f" through {event.through_activation}" if event.through_activation else ""
        yield RuntimeReport(
            message=f"{event.model_class} returns the output of BatchNorm `{bn.path}`"
            f"{through}: the predictions are normalised over the batch",
            suggestion="remove the final BatchNorm, or normalise the last hidden layer instead",
            subject=bn.path,
            at="construction",
        )

    VALID = (
        "import torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))\n"
        "model.train()\n",
        "import torch.nn as nn\n"
        "projector = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16, affine=False))\n"
        "projector.train()\n",
    )
    INVALID = (
        Invalid(
            "import torch.nn as nn\n"
            "model = nn.Sequential(\n"
            "    nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.BatchNorm1d(1)\n"
            ")\n"
            "model.train()\n"
        ),
    )

    def check_module(self) -> None:
        index, summary = self.context.index.with_file(self.context.path, self.context.source)
        path = self.context.path
        if is_test_file(index.root, path):
            return  # a test's toy model is not a model anyone trains for its predictions
        for owner in summary.classes:
            if (path, owner) in model_instances(index) and not is_head_name(owner):
                self._check_class(index, owner)
                self._check_grafted_heads(index, owner)
        for facts in summary.functions.values():
            for built in facts["layers"]:
                key = built["key"]
                is_model = used_as_model(facts, key) and not is_head_name(key)
                if is_model or self._is_grafted_head(index, facts, key):
                    self._check_sequential(index, built["spec"], f"`{key}`")

    def _is_grafted_head(self, index: ProjectIndex, facts: Json, key: str) -> bool:
        """`model.fc = nn.Sequential(...)` on a library classifier that is then used
        as a model: the Sequential now makes the model's predictions."""
        root, _, attr = key.rpartition(".")
        if attr not in CLASSIFIER_ATTRIBUTES or "." in root or not used_as_model(facts, root):
            return False
        return any(
            self._is_library_model(index, self.context.path, binding.get("spec"))
            for binding in facts["bindings"].get(root, [])
        )

    def _check_grafted_heads(self, index: ProjectIndex, owner: str) -> None:
        """`self.backbone.fc = nn.Sequential(...)` in a model class built around a
        library classifier."""
        layers = index.class_layers(self.context.path, owner)
        for key, (spec_path, spec) in layers.items():
            base, _, attr = key.partition(".")
            grafted = attr in CLASSIFIER_ATTRIBUTES and base in layers and "items" in spec
            if (
                grafted
                and spec_path == self.context.path
                and self._is_library_model(index, layers[base][0], layers[base][1])
            ):
                self._check_sequential(index, spec, f"`{owner}.{key}`")

    def _is_library_model(self, index: ProjectIndex, path: str, spec: Json | None) -> bool:
        library = index.library_name(path, (spec or {}).get("call"))
        return kinds.factory_kind(library, (spec or {}).get("arg0")) is not None

    def _check_class(self, index: ProjectIndex, owner: str) -> None:
        info = index.class_info(self.context.path, owner)
        returns = (info.get("forward") or {}).get("returns") or []
        if not returns:
            return
        layers = index.class_layers(self.context.path, owner)
        final: set[str] = set()
        for chain in returns:
            names = [name for name in chain if not self._is_activation(index, layers, name)]
            if not names or names[0] not in layers:
                return
            final.add(names[0])
        if len(final) != 1:
            return
        attr = final.pop()
        spec_path, spec = layers[attr]
        if is_head_name(attr):
            return
        if "items" in spec:
            self._check_sequential(index, spec, f"`{owner}.{attr}`")
            return
        chain = next(c for c in returns)
        names = [name for name in chain if not self._is_activation(index, layers, name)]
        before = layers.get(names[1]) if len(names) > 1 else None
        # A backbone's forward may end in conv -> BN (features for a head); only a final
        # fully connected layer marks the prediction, or a conv whose BN output is
        # pooled into the returned scores (`conv -> BN -> global pool -> flatten`).
        after = chain[: chain.index(attr)]
        pooled = any(self._is_pooling(index, layers, n) for n in after) and not any(
            n.startswith("fn:") and n[3:].replace("_", "").lower() in _HIDDEN_FUNCTIONS
            for n in after
        )
        if before is None:
            return
        producer = leaf(before[1], last=True)
        if not self._is_linear(index, before[0], producer) and not (
            pooled and self._is_producer(index, before[0], producer)
        ):
            return
        if self._is_trainable_bn(index, spec_path, spec) and not names_an_embedding(
            spec, before[1]
        ):
            self._report(spec, f"`{owner}.forward` returns the output of `self.{attr}`")

    def _check_sequential(self, index: ProjectIndex, spec: Json, name: str) -> None:
        items = [item for item in spec["items"]]
        hidden_activation = pooled = False
        while items and items[-1] is not None and self._is_pool_spec(index, items[-1]):
            call = index.library_name(self.context.path, items.pop().get("call"))
            pooled = pooled or "Pool" in (call or "")
        while items and items[-1] is not None and self._is_activation_spec(index, items[-1]):
            call = index.library_name(self.context.path, items.pop().get("call"))
            hidden_activation = hidden_activation or kinds.is_hidden_activation(call)
        if len(items) < 2:
            return
        last, before = leaf(items[-1], last=True), leaf(items[-2], last=True)
        if last is None or before is None:
            return
        # conv -> BN -> ReLU is a feature block (a stem, a backbone stage), not a head;
        # conv -> BN -> global pool -> flatten makes class scores like a final Linear.
        if hidden_activation and not self._is_linear(index, self.context.path, before):
            return
        if pooled and hidden_activation:
            return
        if (
            self._is_trainable_bn(index, self.context.path, last)
            and self._is_producer(index, self.context.path, before)
            and not names_an_embedding(last, before)
        ):
            self._report(last, f"{name} ends in it")

    def _is_trainable_bn(self, index: ProjectIndex, path: str, spec: Json) -> bool:
        if spec.get("kw", {}).get("affine") is False:
            return False
        return index.norm_kind(path, spec.get("call")) == "bn"

    def _is_producer(self, index: ProjectIndex, path: str, spec: Json | None) -> bool:
        return (
            spec is not None
            and kinds.producer_dims(index.library_name(path, spec.get("call"))) is not None
        )

    def _is_linear(self, index: ProjectIndex, path: str, spec: Json | None) -> bool:
        return spec is not None and (index.library_name(path, spec.get("call")) or "").endswith(
            "Linear"
        )

    def _is_activation_spec(self, index: ProjectIndex, spec: Json) -> bool:
        return kinds.is_activation(index.library_name(self.context.path, spec.get("call")))

    def _is_pool_spec(self, index: ProjectIndex, spec: Json) -> bool:
        return _is_pool_or_flatten(index.library_name(self.context.path, spec.get("call")))

    def _is_activation(
        self, index: ProjectIndex, layers: dict[str, tuple[str, Json]], name: str
    ) -> bool:
        """An element-wise step, a reshape or a global pool: the units that come out
        are still the BatchNorm's."""
        if name.startswith("fn:"):
            return True
        if name in layers:
            path, spec = layers[name]
            library = index.library_name(path, spec.get("call"))
            return kinds.is_activation(library) or _is_pool_or_flatten(library)
        return False

    def _is_pooling(
        self, index: ProjectIndex, layers: dict[str, tuple[str, Json]], name: str
    ) -> bool:
        if name == "fn:pool":
            return True
        if name in layers:
            path, spec = layers[name]
            return "Pool" in (index.library_name(path, spec.get("call")) or "")
        return False

    def _report(self, spec: Json, context: str) -> None:
        node = node_at(self.context.module, spec["pos"], cst.Call)
        if node is None:
            return
        layer = (spec.get("call") or "BatchNorm").rsplit(".", 1)[-1].lstrip("~$*")
        message = (
            f"`{layer}` is the model's last transform ({context}): "
            "the output is normalised per batch"
        )
        self.report(
            node,
            # Never a question: a finding states what the code does.
            message=message.replace("?", ""),
            suggestion="remove the final BatchNorm, or normalise the last hidden layer instead",
        )


# Hidden-layer activations written as functions (`F.relu`, `torch.relu`, `x.relu()`).
_HIDDEN_FUNCTIONS = frozenset(
    {"relu", "relu6", "leakyrelu", "prelu", "elu", "selu", "celu", "gelu", "silu", "mish"}
)


def _is_pool_or_flatten(library: str | None) -> bool:
    """`nn.AdaptiveAvgPool2d`, `nn.AvgPool2d`, `nn.Flatten`: no mixing of channels."""
    last = (library or "").rsplit(".", 1)[-1]
    return (library or "").startswith("torch.") and (
        last == "Flatten" or last.startswith(("AdaptiveAvgPool", "AvgPool", "AdaptiveMaxPool"))
    )
