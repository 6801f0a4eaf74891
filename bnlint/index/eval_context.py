"""Evaluation as scripts write it, for BN002: a model whose trained weights a script
loads and then runs without ever training (an inference or demo script), and whether a
key is *certainly* a BatchNorm model (every value it may hold has BN) rather than
possibly one (some candidate has BN, others are unknown).
"""

from __future__ import annotations

import re
from typing import Any

from bnlint.index.functions import DUMMY_INPUTS
from bnlint.index.modes import EVAL_LOADER
from bnlint.index.project import ProjectIndex, call_parameters, covers, mode_before, related
from bnlint.word_search import has_word_match

Json = dict[str, Any]
_DEPTH = 6
# Searched at word starts (`\boptim.`, `\bfit(`: see `word_search`).
_OPTIM_WORD = re.compile(r"optim\.")
_FIT_WORD = re.compile(r"fit\(")
_TRAINING_CALL = re.compile(r"(^|[._])(train|fit)", re.IGNORECASE)


def script_trains(text: str) -> bool:
    """A script that trains: gradients (`.backward(`), optimizer steps (`.step()`,
    `optim.`), or a call of something that trains (`fit(`). Each word is found by a
    literal scan (`word_search`): one alternation regex, tried at every position of
    the source, was most of BN002's time on a model zoo."""
    return (
        ".backward(" in text
        or ".step()" in text
        or has_word_match(_OPTIM_WORD, text)
        or has_word_match(_FIT_WORD, text)
    )


def loaded_for_inference(facts: Json, position: int, key: str) -> bool:
    """Before the event at `position`, the function loads weights into `key` (or into
    the object it is part of) with `load_state_dict`, or built it with released weights
    (`resnet50(weights=...)`, `pretrained=True`), and the function neither trains (no
    `backward()`) nor calls anything named for training (`train(...)`,
    `trainer.fit(...)`): it runs a trained model to get predictions or features."""
    events = facts["events"]
    loaded = any(
        event["k"] == "use"
        and event.get("method") == "load_state_dict"
        and event.get("key")
        and related(event["key"], key)
        for event in events[:position]
    ) or any(_pretrained(binding.get("spec")) for binding in facts["bindings"].get(key, []))
    if not loaded:
        return False
    for event in events:
        if event["k"] == "backward":
            return False
        if event["k"] in ("call", "opaque") and _TRAINING_CALL.search(str(event.get("fn", ""))):
            return False
    return True


def explicit_train_in_evaluation(facts: Json, position: int, key: str, named: bool) -> Json | None:
    """The `.train()` event that puts `key` in training mode for the forward at
    `position`, when both sit inside one evaluation: the forward runs under
    `no_grad`/`inference_mode` over a validation/test loader (or in a function named for
    evaluation), once per batch, its output is read, and the `.train()` call is itself
    under `no_grad` or in the loop over that loader. None otherwise, and when anything
    else that may set the mode (`.eval()`, `.train(flag)`, a call given the model) comes
    in between.

    Needs no model kind: the code asks for training mode in the middle of an evaluation,
    which is wrong for any model with BatchNorm or Dropout and pointless otherwise."""
    events = facts["events"]
    forward = events[position]
    nograd = bool(facts.get("nograd") or forward.get("nograd"))
    eval_data = any(EVAL_LOADER.search(i) for i in forward.get("iter", ()))
    if forward.get("discarded") or not nograd or not (eval_data or named):
        return None
    if "loop" in forward and forward.get("iter") and not facts["loops"][forward["loop"]]["iter"]:
        # Several passes over each batch (`for _ in range(samples)`): Monte Carlo
        # dropout keeps training mode on purpose.
        return None
    for event in reversed(events[:position]):
        target = event.get("key")
        if event["k"] == "train" and target and covers(target, key):
            inside = facts.get("nograd") or event.get("nograd")
            inside = inside or any(EVAL_LOADER.search(i) for i in event.get("iter", ()))
            return event if inside else None
        if target and related(target, key) and event["k"] in ("eval", "setmode", "bn_eval"):
            return None
        if event["k"] in ("call", "opaque") and any(
            passed and related(passed, key)
            for passed in [*event.get("args", ()), *event.get("kwargs", {}).values()]
        ):
            return None
    return None


def _pretrained(spec: Json | None) -> bool:
    arguments = (spec or {}).get("kw", {})
    return arguments.get("pretrained") is True or arguments.get("weights", None) not in (
        None,
        False,
    )


def dummy_input(facts: Json, event: Json) -> bool:
    """A forward on a tensor made up on the spot (`x = torch.randn(2, 3, 224, 224)`):
    a shape check or smoke test, not an evaluation."""
    bindings = facts["bindings"].get(event.get("input") or "", [])
    calls = [str(binding.get("spec", {}).get("call") or "") for binding in bindings]
    return bool(calls) and all(call.rsplit(".", 1)[-1] in DUMMY_INPUTS for call in calls)


def is_module_class(index: ProjectIndex, path: str, name: str, depth: int = 0) -> bool:
    """A project class that is an `nn.Module` (through its bases)."""
    info = index.summaries[path].classes.get(name) if path in index.summaries else None
    if info is None or depth > _DEPTH:
        return False
    for base in info["bases"]:
        found = index.lookup(path, base)
        if found is not None and found[1] == "class":
            if is_module_class(index, found[0], found[2], depth + 1):
                return True
        elif str(index.library_name(path, base) or "").startswith("torch.nn"):
            return True
    return False


def certainly_bn(index: ProjectIndex, path: str, function: str, key: str, depth: int = 0) -> bool:
    """Every value `key` may hold in `function` is a BatchNorm model: each binding, each
    argument callers pass to a parameter; not only one candidate among unknowns."""
    if depth > _DEPTH or index.key_kind(path, function, key) != "bn":
        return False
    facts = index.function_facts(path, function)
    if facts is None:
        return False
    bindings = facts["bindings"].get(key, [])
    if bindings:
        return all(_binding_certainly_bn(index, path, function, key, b, depth) for b in bindings)
    if key in facts["params"]:
        passed = index.arguments_for(path, function, key)
        return bool(passed) and all(
            certainly_bn(index, caller_path, caller, argument, depth + 1)
            for caller_path, caller, argument in passed
        )
    if key.startswith("self.") and facts.get("owner"):
        # A layer built by one constructor is certain; one a helper chooses among
        # several models (`self.phi = self.get_model()`) is not.
        layer = index.class_layers(path, facts["owner"]).get(key.split(".")[1])
        if layer is None:
            return False
        spec = layer[1]
        found = index.lookup(layer[0], spec.get("call"))
        return "self_method" not in spec and (found is None or found[1] == "class")
    return True


def _binding_certainly_bn(
    index: ProjectIndex, path: str, function: str, key: str, binding: Json, depth: int
) -> bool:
    if "spec" in binding:
        return index.spec_kind(path, binding["spec"]) == "bn"
    other = binding.get("alias") or binding.get("param")
    if other == key:
        return True  # `model = model.to(device)`: the same object
    if other is not None:
        return certainly_bn(index, path, function, other, depth + 1)
    return False


def built_in_eval(index: ProjectIndex, path: str, facts: Json, key: str) -> bool:
    """`key` is bound from a project loader that puts the models it returns in eval
    (`attempt_load(...)`, `load_model(...)` ending in `.eval()`), or from a wrapper
    class whose constructor calls `eval()`: the caller's model starts in eval."""
    for binding in facts["bindings"].get(key, []):
        call = binding.get("spec", {}).get("call")
        found = index.lookup(path, call) if call else None
        if found is None:
            continue
        target, what, local = found
        summary = index.summaries[target]
        if what == "function" and summary.functions[local].get("sets_eval"):
            return True
        if what == "class" and summary.classes[local].get("evals_at_init"):
            return True
    return False


def mode_through_lists(
    index: ProjectIndex, path: str, function: str, events: list[Json], position: int, key: str
) -> str | None:
    """The mode `key` is in at `position` when the last thing that set it was a project
    helper given a list of models (`set_mode("eval", [encoder, decoder])`, where the
    helper loops over its parameter calling `m.eval()`); None otherwise."""
    for index_at in range(position - 1, -1, -1):
        event = events[index_at]
        if event["k"] != "call" or "lists" not in event:
            continue
        slots = [slot for slot, keys in event["lists"].items() if key in keys]
        callee = index.resolve_function(path, function, event["fn"]) if slots else None
        facts = index.function_facts(*callee) if callee is not None else None
        if callee is None or facts is None:
            continue
        params = call_parameters(facts)
        for slot in slots:
            parameter = params[int(slot[1:])] if slot.startswith("#") else slot
            if slot.startswith("#") and int(slot[1:]) >= len(params):
                continue
            helper = _elements_mode(facts, f"{parameter}[*]", event.get("words", []))
            if helper is None:
                continue
            # A mode call on the model after the helper has the last word.
            later = mode_before(
                index, path, function, events[index_at + 1 :], position - index_at - 1, key
            )
            return later or helper
    return None


def _elements_mode(facts: Json, elements: str, words: list[str]) -> str | None:
    """The mode a helper leaves the elements of a list parameter in: its only mode, or,
    when it holds both (`if mode == "eval": m.eval() else: m.train()`), the one the
    call's own words name; "unknown" when they do not say."""
    modes: set[str] = {
        str(e["k"]) for e in facts["events"] if e["k"] in ("eval", "train") and e["key"] == elements
    }
    if len(modes) == 1:
        return modes.pop()
    if not modes:
        return None
    said = " ".join(words).lower()
    if any(word in said for word in ("eval", "test", "val", "infer")):
        return "eval"
    return "train" if "train" in said else "unknown"
