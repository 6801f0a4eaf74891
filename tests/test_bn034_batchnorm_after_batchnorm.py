from bnlint.registry import default_codes
from tests.conftest import lint


def test_rule_is_off_by_default() -> None:
    assert "BN034" not in default_codes()


def test_consecutive_statements_on_different_tensors_are_silent() -> None:
    source = (
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.a = nn.BatchNorm2d(3)\n"
        "        self.b = nn.BatchNorm2d(3)\n    def forward(self, x, y):\n"
        "        x = self.a(x)\n        y = self.b(y)\n        return x + y\n"
    )
    assert lint(source, ["BN034"]) == []
