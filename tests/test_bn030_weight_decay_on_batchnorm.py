from bnlint.registry import default_codes
from tests.conftest import lint


def test_rule_is_off_by_default() -> None:
    assert "BN030" not in default_codes()


def test_model_rebound_to_an_unknown_object_is_not_judged() -> None:
    source = (
        "import torch\nimport torch.nn as nn\nnet = nn.Sequential(nn.BatchNorm1d(4))\n"
        "net = load()\nopt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-4)\n"
    )
    assert lint(source, ["BN030"]) == []
