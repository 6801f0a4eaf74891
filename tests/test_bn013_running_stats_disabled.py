from bnlint.config import RULE_OPTIONS
from bnlint.engine.lint import lint_text
from bnlint.index import ProjectIndex
from bnlint.registry import rule_for
from tests.conftest import lint

CONSTRUCTOR = "import torch.nn as nn\nbn = nn.BatchNorm2d(8, 1e-5, 0.1, True, False)\n"


def test_constructor_literal_is_silent_by_default() -> None:
    assert lint(CONSTRUCTOR, ["BN013"]) == []


def test_constructor_literal_is_reported_under_the_option() -> None:
    rule = rule_for("BN013")
    assert rule is not None
    options = {**RULE_OPTIONS, "running-stats-constructor": True}
    findings = lint_text("m.py", CONSTRUCTOR, [rule], ProjectIndex.empty(), options)
    assert [f.start.line for f in findings] == [2]


def test_assignment_in_a_non_init_method_of_self_is_reported() -> None:
    source = "class A:\n    def off(self):\n        self.track_running_stats = False\n"
    assert [f.start.line for f in lint(source, ["BN013"])] == [3]
