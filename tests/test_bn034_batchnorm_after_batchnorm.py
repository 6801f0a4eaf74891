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


MODULE = (
    "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n"
    "        super().__init__()\n        self.a = nn.BatchNorm2d(3)\n"
    "        self.b = nn.BatchNorm2d(3)\n    def forward(self, x):\n"
)


def test_consecutive_statements_inside_branches_of_forward_are_reported() -> None:
    source = MODULE + (
        "        try:\n            x = self.a(x)\n            x = self.b(x)\n"
        "        except ValueError:\n            pass\n        else:\n"
        "            x = self.a(x)\n            x = self.b(x)\n"
        "        match x:\n            case None:\n"
        "                x = self.a(x)\n                x = self.b(x)\n"
        "        return x\n"
    )
    assert [f.start.line for f in lint(source, ["BN034"])] == [10, 15, 19]


def test_statements_sharing_a_line_are_not_judged() -> None:
    source = MODULE + "        x = self.a(x); x = self.b(x)\n        return x\n"
    assert lint(source, ["BN034"]) == []


def test_keyword_argument_of_the_outer_batchnorm_counts() -> None:
    source = MODULE + "        return self.b(input=self.a(x))\n"
    assert [f.start.line for f in lint(source, ["BN034"])] == [8]


def test_unpacked_layers_between_two_batchnorms_are_unknown() -> None:
    source = (
        "import torch.nn as nn\nm = nn.Sequential(nn.BatchNorm1d(4), *extra, nn.BatchNorm1d(4))\n"
    )
    assert lint(source, ["BN034"]) == []
