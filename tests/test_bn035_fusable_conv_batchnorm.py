from tests.conftest import lint

NET = (
    "import torch\nimport torch.nn as nn\n"
    "class Net(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.conv = nn.Conv2d(3, 8, 3, bias=False)\n"
    "        self.bn = nn.BatchNorm2d(8)\n"
    "    def forward(self, x):\n"
    "        return self.bn(self.conv(x))\n"
)
EXPORT = "net = Net()\nnet.eval()\ntraced = torch.jit.trace(net, x)\n"


def _lines(source: str) -> list[int]:
    return [f.start.line for f in lint(source, ["BN035"])]


def test_eval_model_with_conv_feeding_bn_is_reported_at_the_trace() -> None:
    assert _lines(NET + EXPORT) == [12]


def test_model_not_in_eval_is_left_to_bn009() -> None:
    assert _lines(NET + "net = Net()\ntraced = torch.jit.trace(net, x)\n") == []


def test_a_fuse_call_anywhere_silences() -> None:
    assert _lines(NET + EXPORT + "def deploy(m):\n    return m.fuse()\n") == []


def test_a_name_that_merely_contains_fold_does_not_silence() -> None:
    assert _lines(NET + "folder = 'out'\n" + EXPORT) == [13]


def test_training_code_is_silent() -> None:
    assert _lines(NET + EXPORT + "traced(x).sum().backward()\n") == []


def test_a_folding_toolchain_imported_inside_a_function_silences() -> None:
    source = NET + EXPORT + "def to_onnx(m):\n    import onnxruntime\n    return m\n"
    assert _lines(source) == []


def test_linear_feeding_batchnorm_has_no_conv_pair() -> None:
    source = NET.replace("nn.Conv2d(3, 8, 3, bias=False)", "nn.Linear(3, 8, bias=False)")
    assert _lines(source.replace("BatchNorm2d", "BatchNorm1d") + EXPORT) == []


def test_a_parameter_of_a_nested_function_is_not_the_outer_model() -> None:
    source = (
        NET + "def main():\n    net = Net().eval()\n"
        "    def export(net):\n        return torch.jit.trace(net, x)\n"
        "    return export\n"
    )
    assert _lines(source) == []


def test_export_suggestion_names_the_modules_to_fuse() -> None:
    source = NET + "net = Net()\nnet.eval()\nprogram = torch.export.export(net, (x,))\n"
    (finding,) = lint(source, ["BN035"])
    assert 'fuse_modules(net, [["conv", "bn"], ...])' in finding.suggestion
    assert "`self.conv` feeds `self.bn`" in finding.message
