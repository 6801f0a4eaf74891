"""The project index stays linear-ish on call graphs where a naive walk is exponential:
helpers that call helpers several times each, deeper than the depth bound. These tests
count the index's work (not its time: speed targets live in bench/), so they fail if a
pass starts walking every path through the call graph again (fastestimator, issue 11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bnlint.index import ProjectIndex, summarize_file

FAN_OUT = 8
CHAIN = 12


def freeze_helpers() -> str:
    """`freeze0` freezes the backbone; `freezeN` calls `freezeN-1` FAN_OUT times."""
    lines = [
        "import torch",
        "",
        "",
        "def freeze0(model):",
        "    for p in model.backbone.parameters():",
        "        p.requires_grad = False",
    ]
    for level in range(1, CHAIN):
        lines += ["", "", f"def freeze{level}(model):", '    """requires_grad off, in stages."""']
        lines += [f"    freeze{level - 1}(model)"] * FAN_OUT
    lines += [
        "",
        "",
        "def main(net):",
        '    """Fine-tune with the backbone\'s requires_grad off."""',
        f"    freeze{CHAIN - 1}(net)",
        "    freeze3(net)",
        "",
    ]
    return "\n".join(lines)


def deep_callers() -> str:
    """`stage0` trains its `model` parameter; `stageN` passes its own to `stageN-1`,
    FAN_OUT times; only `main`, at the top of the chain, builds the model."""
    lines = [
        "import torch",
        "from torch import nn",
        "",
        "",
        "def stage0(model, loader):",
        "    model.train()",
        "    for x in loader:",
        "        model(x).backward()",
    ]
    for level in range(1, CHAIN):
        lines += ["", "", f"def stage{level}(model, loader):", "    model.train()"]
        lines += [f"    stage{level - 1}(model, loader)"] * FAN_OUT
    lines += [
        "",
        "",
        "def main(loader):",
        "    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))",
        f"    stage{CHAIN - 1}(model, loader)",
        "",
    ]
    return "\n".join(lines)


def index_of(text: str) -> ProjectIndex:
    return ProjectIndex.from_summaries(
        "/project", {"/project/train.py": summarize_file("/project/train.py", text)}
    )


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> Callable[[], int]:
    """Count calls of ProjectIndex.<name>; returns the counter."""
    calls = [0]
    original = getattr(ProjectIndex, name)

    def counted(self: ProjectIndex, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ProjectIndex, name, counted)
    return lambda: calls[0]


def test_freeze_through_helpers_called_many_times_visits_each_helper_once_per_depth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = index_of(freeze_helpers())
    main = index.function_facts("/project/train.py", "main")
    assert main is not None
    calls = counting(monkeypatch, "frozen_by_call")
    deep, shallow = (index.frozen_by_call("/project/train.py", "main", e) for e in main["events"])
    # The freeze is CHAIN calls deep from the first call (past the depth bound) and four
    # from the second: the bound still decides what is found.
    assert deep == []
    assert shallow == ["net.backbone"]
    # A walk of every path makes FAN_OUT ** depth calls (over 300,000 here).
    assert calls() <= 10 * CHAIN * FAN_OUT


def test_parameter_kind_through_a_deep_chain_of_callers_is_computed_once_per_depth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = index_of(deep_callers())
    calls = counting(monkeypatch, "_key_kind")
    # `stage0`'s model is built CHAIN callers up, past the depth bound: unknown here.
    assert index.key_kind("/project/train.py", "stage0", "model") is None
    # Two callers up it is known, through the same memo.
    assert index.key_kind("/project/train.py", f"stage{CHAIN - 2}", "model") == "bn"
    assert calls() <= 10 * CHAIN * FAN_OUT


def test_helper_freezes_through_helpers_called_many_times_visits_each_once_per_depth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # BN005's own walk of freeze helpers (bnlint.index.freezes) must be memoised like
    # frozen_by_call: the integration of issue 10 reintroduced the exponential walk.
    from bnlint.index import freezes

    index = index_of(freeze_helpers())
    main = index.function_facts("/project/train.py", "main")
    assert main is not None
    calls = [0]
    original = freezes.helper_freezes

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(freezes, "helper_freezes", counted)
    deep, shallow = (
        freezes.helper_freezes(index, "/project/train.py", "main", e) for e in main["events"]
    )
    assert deep == []
    assert set(shallow) == {("net.backbone", "params")}
    assert calls[0] <= 10 * CHAIN * FAN_OUT
