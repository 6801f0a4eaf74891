from tests.conftest import lint

MODULE = "import torch.nn as nn\nclass Net(nn.Module):\n"


def test_flag_assignment_is_reported_on_its_line() -> None:
    source = "import torch\nmodel = make()\nmodel.training = False\n"
    assert [(f.start.line, f.code) for f in lint(source, ["BN008"])] == [(3, "BN008")]


def test_override_that_only_sets_own_flag_is_reported_at_its_def() -> None:
    source = MODULE + "    def train(self, mode=True):\n        self.training = mode\n"
    (finding,) = lint(source, ["BN008"])
    assert finding.start.line == 3 and "super().train(mode)" in finding.suggestion


def test_override_iterating_modules_is_silent() -> None:
    source = (
        MODULE + "    def train(self, mode=True):\n"
        "        for _, m in self.named_modules():\n            m.training = mode\n"
    )
    assert lint(source, ["BN008"]) == []


def test_submodule_flag_inside_override_is_reported() -> None:
    source = (
        MODULE + "    def train(self, mode=True):\n        super().train(mode)\n"
        "        self.backbone.training = False\n"
    )
    assert [f.start.line for f in lint(source, ["BN008"])] == [5]


def test_trainer_train_method_is_not_an_override() -> None:
    source = "class Trainer:\n    def train(self, epochs):\n        self.training = True\n"
    assert lint(source, ["BN008"]) == []


def test_chained_assignment_is_reported_without_fix() -> None:
    (finding,) = lint("a.training = b = False\n", ["BN008"])
    assert finding.fix is None
