from tests.conftest import lint

MODEL = (
    "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
    "        super().__init__()\n        self.bn = nn.BatchNorm2d(3)\n"
)


def test_training_step_in_another_function_is_not_linked() -> None:
    source = (
        MODEL + "def make():\n    return Net().half()\ndef fit(m):\n    m(x).sum().backward()\n"
    )
    assert lint(source, ["BN020"]) == []


def test_model_converted_back_to_float_is_silent() -> None:
    source = MODEL + "model = Net().half()\nmodel = model.float()\nmodel(x).sum().backward()\n"
    assert lint(source, ["BN020"]) == []


def test_tensor_float_does_not_hide_the_conversion() -> None:
    source = (
        MODEL + "model = Net().half()\nfor x in data:\n    loss = model(x).float().sum()\n"
        "    loss.backward()\n"
    )
    assert [f.start.line for f in lint(source, ["BN020"])] == [6]


def test_one_finding_per_conversion() -> None:
    source = MODEL + "model = Net().half()\nloss.backward()\nopt.step()\n"
    assert len(lint(source, ["BN020"])) == 1


def test_factory_model_known_to_the_index_is_reported() -> None:
    source = (
        "import torchvision\ndef fit(x):\n    net = torchvision.models.resnet18()\n"
        "    net = net.half()\n    net(x).sum().backward()\n"
    )
    assert [f.start.line for f in lint(source, ["BN020"])] == [4]


def test_async_function_is_its_own_scope() -> None:
    source = (
        MODEL + "async def fit(x):\n    m = Net().half()\n    m(x).sum().backward()\n"
        "async def other(m):\n    opt.step()\n"
    )
    assert [f.start.line for f in lint(source, ["BN020"])] == [7]


def test_half_conversion_in_async_function_is_not_linked_to_module_step() -> None:
    source = MODEL + "async def make():\n    return Net().half()\nopt.step()\n"
    assert lint(source, ["BN020"]) == []


def test_half_with_arguments_is_not_the_module_conversion() -> None:
    source = MODEL + "m = Net().half(memory_format=fmt)\nloss.backward()\n"
    assert lint(source, ["BN020"]) == []


def test_to_with_device_then_half_dtype_is_reported() -> None:
    source = (
        "import torch\n" + MODEL + "m = Net().to('cuda', torch.half)\nloss.backward()\n"
        "n = Net().to(device='cuda', dtype=torch.float16)\nloss.backward()\n"
    )
    assert [f.start.line for f in lint(source, ["BN020"])] == [7, 9]


def test_class_holding_batchnorm_through_a_partial_or_another_class() -> None:
    source = (
        MODEL + "from functools import partial\nclass P(nn.Module):\n"
        "    norm = partial(nn.BatchNorm2d, eps=1e-3)\n"
        "class W(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.body = Net()\n"
        "p = P().half()\nw = W().half()\nloss.backward()\n"
    )
    assert [f.start.line for f in lint(source, ["BN020"])] == [13, 14]


def test_name_rebound_to_another_model_before_training_is_silent() -> None:
    # The index knows `m` as a BN model from its first binding; the second binding, to a
    # class of this file that holds no BatchNorm, is what trains.
    source = (
        MODEL + "class Lin(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(4, 2)\n"
        "def main(loader):\n    m = Net().half()\n    m = Lin()\n"
        "    for x in loader:\n        m(x).sum().backward()\n"
    )
    assert lint(source, ["BN020"]) == []
    assert lint(source.replace("m = Lin()", "m = Net()"), ["BN020"]) == []  # a fresh model
    assert lint(source.replace("m = Lin()", "m = m.cuda()"), ["BN020"])  # the same model
    not_rebound = source.replace("    m = Lin()\n", "")
    assert [f.start.line for f in lint(not_rebound, ["BN020"])] == [11]
