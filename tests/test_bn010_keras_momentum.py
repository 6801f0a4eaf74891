from tests.conftest import lint


def test_unresolved_batchnorm_name_is_not_reported() -> None:
    assert lint("bn = nn.BatchNorm2d(64, momentum=0.9)\n", ["BN010"]) == []


def test_one_line_isinstance_guard_is_reported() -> None:
    source = (
        "import torch.nn as nn\nfor m in net.modules():\n"
        "    if isinstance(m, nn.BatchNorm1d): m.momentum = 0.99\n"
    )
    assert [f.start.line for f in lint(source, ["BN010"])] == [3]


def test_assignment_outside_the_guard_is_not_reported() -> None:
    source = (
        "import torch.nn as nn\nfor m in net.modules():\n"
        "    if isinstance(m, nn.BatchNorm2d):\n        m.eps = 1e-3\n    else:\n"
        "        m.momentum = 0.9\n"
    )
    assert lint(source, ["BN010"]) == []


def test_lazy_batchnorm_momentum_is_second_positional() -> None:
    source = "import torch.nn as nn\nbn = nn.LazyBatchNorm2d(1e-3, 0.9)\n"
    assert [f.suggestion.split()[1] for f in lint(source, ["BN010"])] == ["momentum=0.1"]


def test_fix_writes_one_minus_momentum_without_float_noise() -> None:
    source = "import torch.nn as nn\nbn = nn.BatchNorm2d(8, momentum=0.9997)\n"
    (finding,) = lint(source, ["BN010"])
    assert finding.fix is not None and finding.fix.edits[0].content == "0.0003"


def test_functional_batch_norm_momentum_is_reported() -> None:
    source = (
        "import torch.nn.functional as F\n"
        "y = F.batch_norm(x, rm, rv, w, b, self.training, 0.9, 1e-5)\n"
    )
    assert len(lint(source, ["BN010"])) == 1
