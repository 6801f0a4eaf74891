"""Layer-to-layer edges of one file: what directly feeds what, from `forward` data flow
and from `nn.Sequential` order, and which outputs are a model's output.

Shared by the rules about neighbouring layers (BN004 bias-before-batchnorm, BN001
output-batchnorm, and later BN011/BN014/BN034).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bnlint.index import kinds
from bnlint.index.project import ProjectIndex

Json = dict[str, Any]
# Names that mark a projection/embedding head or neck: BN there is by design (P28).
HEAD_WORDS = ("proj", "neck", "embed", "feat", "bottleneck", "bnneck", "head_bn")


@dataclass(frozen=True)
class Edge:
    """`producer`'s output goes into `consumer`; `exclusive` when it goes nowhere else."""

    producer: Json
    consumer: Json
    producer_path: str
    consumer_path: str
    owner: str | None  # the class whose forward or Sequential this is
    names: tuple[str, str]  # attribute names or "[i]" positions, for messages

    def describe(self, consumer: str, verb: str = "feeds") -> str:
        """How the edge reads in a message: `self.conv` feeds `self.bn`, or the
        consumer follows directly in a `Sequential`."""
        producer, receiver = self.names
        if producer.startswith("["):
            return f"it is followed directly by `{consumer}` in the `Sequential`"
        return f"`self.{producer}` {verb} `self.{receiver}`"


def leaf(spec: Json | None, last: bool) -> Json | None:
    """The first or last leaf layer of a container spec (`Sequential(Sequential(a), b)`)."""
    while spec is not None and "items" in spec and (spec.get("call") or "").endswith("Sequential"):
        if not spec["items"]:
            return None
        spec = spec["items"][-1 if last else 0]
    return spec


def container_specs(index: ProjectIndex, path: str) -> Iterator[tuple[str | None, Json]]:
    """Every container spec built in a file, once: (owning class or None, spec)."""
    seen: set[tuple[int, ...]] = set()
    summary = index.summaries.get(path)
    if summary is None:
        return

    def walk(owner: str | None, spec: Json | None) -> Iterator[tuple[str | None, Json]]:
        if spec is None:
            return
        for alt in spec.get("alts", ()):
            yield from walk(owner, alt)
        if "items" in spec:
            key = tuple(spec["pos"])
            if key not in seen:
                seen.add(key)
                yield owner, spec
            for item in spec["items"]:
                yield from walk(owner, item)

    for name, info in summary.classes.items():
        for spec in info["layers"].values():
            yield from walk(name, spec)
        for facts in info["methods"].values():
            for returned in facts["returns"]:
                yield from walk(name, returned.get("spec"))
    for facts in summary.functions.values():
        for returned in facts["returns"]:
            yield from walk(None, returned.get("spec"))
        for built in facts["layers"]:
            yield from walk(None, built["spec"])
        for bindings in facts["bindings"].values():
            for binding in bindings:
                yield from walk(None, binding.get("spec"))


def direct_edges(index: ProjectIndex, path: str) -> Iterator[Edge]:
    """Exclusive producer → consumer edges of a file: from each class's `forward` (a
    value used only as the input of one layer) and from neighbours in a Sequential."""
    summary = index.summaries.get(path)
    if summary is None:
        return
    for name, info in summary.classes.items():
        forward = info.get("forward")
        if not forward:
            continue
        layers = index.class_layers(path, name)
        for producer, consumer in forward["feeds"].items():
            if consumer is None or producer not in layers or consumer not in layers:
                continue
            producer_path, producer_spec = layers[producer]
            consumer_path, consumer_spec = layers[consumer]
            first, last = leaf(consumer_spec, last=False), leaf(producer_spec, last=True)
            if first is not None and last is not None:
                yield Edge(last, first, producer_path, consumer_path, name, (producer, consumer))
    for owner, spec in container_specs(index, path):
        if not (spec.get("call") or "").endswith("Sequential"):
            continue
        items = spec["items"]
        for position in range(len(items) - 1):
            before, after = leaf(items[position], last=True), leaf(items[position + 1], last=False)
            if before is not None and after is not None:
                yield Edge(before, after, path, path, owner, (f"[{position}]", f"[{position + 1}]"))


def has_bias(index: ProjectIndex, path: str, spec: Json) -> bool | None:
    """Whether a torch Conv*/Linear spec keeps its bias: True, False or None (unknown,
    or not such a layer)."""
    library = index.library_name(path, spec.get("call"))
    if kinds.producer_dims(library) is None or library is None:
        return None
    arguments = spec.get("kw", {})
    if "bias" in arguments:
        value = arguments["bias"]
        return value if isinstance(value, bool) else None
    positional = f"#{kinds.bias_position(library)}"
    if positional in arguments:
        value = arguments[positional]
        return value if isinstance(value, bool) else None
    if "*" in arguments or "**" in arguments:
        return None
    return True


def is_head_name(*names: str | None) -> bool:
    return any(word in (name or "").lower() for name in names for word in HEAD_WORDS)


# Widths that name an embedding or a feature vector, and widths that name class scores.
# PyTorch's own parameter names (`out_features`) say nothing either way.
_EMBEDDING_WIDTH = re.compile(
    r"^(?:emb\w*|feat\w*|latent|proj\w*|code|hidden|bottleneck|descr\w*|z)$"
)
_CLASS_WIDTH = re.compile(r"^(?:class\w*|label\w*|categor\w*|cls|nc|classes)$")
_GENERIC_WIDTHS = frozenset({"out_features", "in_features", "num_features", "features"})


def names_an_embedding(*specs: Json | None) -> bool:
    """The width a final layer is built with names an embedding (`BatchNorm1d(
    embedding_size)`, `Linear(512, feat_dim)`) and none names classes."""
    tokens = [
        word
        for spec in specs
        if (spec or {}).get("width", "").lower() not in _GENERIC_WIDTHS
        for word in (spec or {}).get("width", "").lower().split("_")
    ]
    if any(_CLASS_WIDTH.match(word) for word in tokens):
        return False
    return any(_EMBEDDING_WIDTH.match(word) for word in tokens)


def used_as_model(facts: Json, key: str) -> bool:
    """A key the function trains, evaluates or optimises: `.parameters()`, `.train()`,
    `.eval()`, `.state_dict()` or a forward call on it."""
    return any(
        event.get("key") == key and event["k"] in ("use", "forward", "eval", "train")
        for event in facts["events"]
    )


def model_instances(index: ProjectIndex) -> set[tuple[str, str]]:
    """(path, class) of every project class instantiated somewhere and used as a model."""
    memo = ("model-instances",)
    if memo in index._memo:
        return index._memo[memo]  # type: ignore[no-any-return]
    found: set[tuple[str, str]] = set()
    for path in index.summaries:
        for _, facts in index.functions(path):
            for key, bindings in facts["bindings"].items():
                for binding in bindings:
                    spec = binding.get("spec")
                    if spec is None or not used_as_model(facts, key):
                        continue
                    target = index.lookup(path, spec.get("call"))
                    if target is not None and target[1] == "class":
                        found.add((target[0], target[2]))
    index._memo[memo] = found
    return found
