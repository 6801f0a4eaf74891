"""The pre-filter's branch-by-branch pattern search answers as `re.search` does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bnlint.engine.run import static_rules
from bnlint.engine.trigger_search import pattern_found, trigger_branches

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = sorted(
    {meta.trigger_pattern for meta in static_rules().values() if meta.trigger_pattern}
)
# Lines that match one branch each of the rules' patterns, and near misses.
SNIPPETS = [
    "with torch.no_grad():\n",
    "for x, y in tqdm(val_loader):\n",
    "for x, y in enumerate(test_loader):\n",
    "it = iter(devset)\n",
    "xiter(val)\n",
    "def evaluate(model):\n",
    "    def forward(self, x):\n",
    "class Head(nn.Sequential):\n",
    "torch.save(model, path)\n",
    "save (model)\n",
    "autosave(model)\n",
    "from torch.jit import script, trace\n",
    "m = torch.export.export(model, args)\n",
    "reexport.export(x)\n",
    "bn = nn.BatchNorm2d(8, momentum=0.9)\n",
    "MOMENTUM = cfg.momentum\n",
    "model.eval\n",
    "model.training = False\n",
    "model.training == False\n",
    "loss.backward()\n",
    "nn.LSTM(4, 8)\n",
    "swa = AveragedModel(model)\n",
    "optimizer = SGD(params, weight_decay=1e-4)\n",
    "if step % (accum) == 0:\n",
    "loader = DataLoader(ds, shuffle=True)\n",
    "from torchsummary import summary\n",
]


def _texts() -> list[str]:
    files = sorted((ROOT / "fixtures").rglob("*.py")) + sorted((ROOT / "examples").rglob("*.py"))
    return [path.read_text(encoding="utf-8") for path in files] + SNIPPETS + ["".join(SNIPPETS)]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_rule_trigger_patterns_found_as_by_re_search(pattern: str) -> None:
    whole = re.compile(pattern, re.MULTILINE)
    for text in _texts():
        assert pattern_found(pattern, text) == (whole.search(text) is not None), text[:200]


def test_a_leading_group_of_words_is_searched_word_by_word() -> None:
    branches = trigger_branches(r"no_grad|(?:tqdm|iter)\(\w*val")
    assert [b.guard for b in branches] == ["no_grad", "tqdm(", "iter("]


def test_a_leading_word_boundary_is_checked_per_match() -> None:
    (branch,) = trigger_branches(r"\bsave\s*\(")
    assert branch.word_start and branch.guard == "save"
    assert not pattern_found(r"\bsave\s*\(", "autosave(m)")
    assert pattern_found(r"\bsave\s*\(", "torch.save (m)")


def test_optional_and_repeated_literals_are_not_required() -> None:
    assert trigger_branches(r"colou?r")[0].guard == "colo"
    assert trigger_branches(r"ab{2}cd")[0].guard == "cd"
    assert pattern_found(r"xy+z", "xyyyz") and trigger_branches(r"xy+z")[0].guard == "xy"


def test_patterns_with_global_flags_or_back_references_are_searched_whole() -> None:
    for pattern in (r"(?i)momentum|beta", r"(a)|b\1", r"(?<=x)y|z"):
        (branch,) = trigger_branches(pattern)
        assert branch.pattern.pattern == pattern and branch.guard == ""
