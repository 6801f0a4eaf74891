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


MODEL = "import torch\nimport torch.nn as nn\nnet = nn.Sequential(nn.BatchNorm1d(4))\n"


def test_finding_points_at_the_weight_decay_keyword() -> None:
    source = MODEL + "opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-4)\n"
    (finding,) = lint(source, ["BN030"])
    assert (finding.start.line, finding.start.column, finding.end.column) == (4, 49, 66)
    assert "`net`" in finding.message


def test_any_positive_number_literal_counts() -> None:
    source = MODEL + "opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=0x10)\n"
    assert [f.code for f in lint(source, ["BN030"])] == ["BN030"]


def test_true_and_negative_decay_are_not_numbers_above_zero() -> None:
    for decay in ("True", "-1e-4", "0.0", "wd"):
        source = MODEL + f"opt = torch.optim.SGD(net.parameters(), weight_decay={decay})\n"
        assert lint(source, ["BN030"]) == [], decay


def test_model_bound_in_an_async_function_is_judged_in_its_scope() -> None:
    source = MODEL + (
        "async def main():\n    m = nn.Sequential(nn.BatchNorm1d(4)).cuda()\n"
        "    opt = torch.optim.AdamW(m.parameters(), weight_decay=0.05)\n"
    )
    assert [f.start.line for f in lint(source, ["BN030"])] == [6]
