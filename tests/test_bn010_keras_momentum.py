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


def test_fix_keeps_the_literal_as_written() -> None:
    # ast keeps only the value: the message and the fix come from the source text.
    source = "import torch.nn as nn\nbn = nn.BatchNorm2d(8, momentum=0.9_9)\n"
    (finding,) = lint(source, ["BN010"])
    assert "momentum=0.9_9" in finding.message
    assert finding.fix is not None and finding.fix.edits[0].content == "0.01"


def test_exponent_literal_is_fixed_as_a_decimal() -> None:
    source = "import torch.nn as nn\nbn = nn.BatchNorm2d(8, momentum=9.9e-1)\n"
    (finding,) = lint(source, ["BN010"])
    assert finding.fix is not None and finding.fix.edits[0].content == "0.01"


def test_fix_replaces_only_the_number_inside_parentheses() -> None:
    source = "import torch.nn as nn\nbn = nn.BatchNorm2d(8, momentum=(0.9))\n"
    (finding,) = lint(source, ["BN010"])
    assert finding.fix is not None
    (edit,) = finding.fix.edits
    line = source.splitlines()[edit.start.line - 1]
    fixed = line[: edit.start.column - 1] + edit.content + line[edit.end.column - 1 :]
    assert fixed == "bn = nn.BatchNorm2d(8, momentum=(0.1))"


def test_positional_momentum_before_a_star_argument_is_reported() -> None:
    source = "import torch.nn as nn\nbn = nn.BatchNorm2d(64, 1e-3, 0.9, *rest)\n"
    assert len(lint(source, ["BN010"])) == 1


def test_star_argument_before_the_momentum_position_is_unknown() -> None:
    source = "import torch.nn as nn\nbn = nn.BatchNorm2d(*shape, 0.9)\n"
    assert lint(source, ["BN010"]) == []


def test_elif_guard_is_reported_and_else_branch_is_not() -> None:
    source = (
        "import torch.nn as nn\nfor m in net.modules():\n"
        "    if isinstance(m, nn.Conv2d):\n        m.momentum = 0.9\n"
        "    elif isinstance(m, nn.BatchNorm2d):\n        m.momentum = 0.99\n"
        "    else:\n        m.momentum = 0.8\n"
    )
    assert [f.start.line for f in lint(source, ["BN010"])] == [6]


def test_assignment_nested_in_the_guarded_block_is_reported() -> None:
    source = (
        "import torch.nn as nn\nfor m in net.modules():\n"
        "    if isinstance(m, nn.BatchNorm2d):\n        with torch.no_grad():\n"
        "            m.momentum = 0.9\n"
    )
    assert [f.start.line for f in lint(source, ["BN010"])] == [5]


def test_int_bool_and_negative_momenta_are_not_float_literals() -> None:
    source = (
        "import torch.nn as nn\nfor m in net.modules():\n"
        "    if isinstance(m, nn.BatchNorm2d):\n        m.momentum = True\n"
        "bn = nn.BatchNorm2d(8, momentum=-0.9)\n"
    )
    assert lint(source, ["BN010"]) == []


def test_constant_reassigned_or_annotated_is_not_followed() -> None:
    source = (
        "import torch.nn as nn\nA = 0.9\nA = 0.9\nB: float = 0.9\n"
        "bn = nn.BatchNorm2d(8, momentum=A)\nbn2 = nn.BatchNorm2d(8, momentum=B)\n"
    )
    assert lint(source, ["BN010"]) == []
