from bnlint.config import RULE_OPTIONS
from bnlint.engine.lint import lint_text
from bnlint.index import ProjectIndex
from bnlint.registry import default_codes, rule_for
from tests.conftest import lint

SOURCE = (
    "import torch.nn.functional as F\nclass B:\n    def forward(self, x):\n"
    "        return F.batch_norm(x, self.rm, self.rv, training=True)\n"
)


def test_rule_is_off_by_default() -> None:
    assert "BN012" not in default_codes()


def test_transductive_option_silences_it() -> None:
    rule = rule_for("BN012")
    assert rule is not None
    options = {**RULE_OPTIONS, "transductive-batchnorm": True}
    assert lint_text("m.py", SOURCE, [rule], ProjectIndex.empty(), options) == []
    assert len(lint(SOURCE, ["BN012"])) == 1


def test_nested_function_inside_forward_is_not_forward() -> None:
    source = (
        "import torch.nn.functional as F\nclass B:\n    def forward(self, x):\n"
        "        def helper(y):\n            return F.batch_norm(y, rm, rv, training=True)\n"
        "        return helper(x)\n"
    )
    assert lint(source, ["BN012"]) == []
