from tests.conftest import lint

MODULE = "import torch.nn as nn\nclass Net(nn.Module):\n"


def test_flag_assignment_is_reported_on_its_line() -> None:
    source = "import torch\nmodel = make()\nmodel.training = False\nprint(model(x))\n"
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
    (finding,) = lint("a.training = b = False\na(x)\n", ["BN008"])
    assert finding.fix is None


def test_fix_keeps_a_parenthesised_receiver() -> None:
    (finding,) = lint("(net).training = False  # eval\nnet(x)\n", ["BN008"])
    assert finding.fix is not None
    (edit,) = finding.fix.edits
    assert edit.content == "(net).eval()"
    assert (edit.start.column, edit.end.column) == (1, 23)


def test_fix_keeps_the_receiver_as_written() -> None:
    (finding,) = lint("model.layers[ 'é' ].training = True; x = 1\nmodel(x)\n", ["BN008"])
    assert finding.fix is not None
    (edit,) = finding.fix.edits
    assert edit.content == "model.layers[ 'é' ].train()"
    assert (edit.start.column, edit.end.column) == (1, 36)


def test_override_finding_points_at_the_method_name() -> None:
    source = (
        MODULE + "    @torch.no_grad()\n    async def train(self, mode=True):\n"
        "        self.training = mode\n"
    )
    (finding,) = lint(source, ["BN008"])
    assert (finding.start.line, finding.start.column, finding.end.column) == (4, 15, 20)


def test_override_name_after_a_line_continuation() -> None:
    source = MODULE + "    def \\\ntrain(self, mode=True):\n        self.training = mode\n"
    (finding,) = lint(source, ["BN008"])
    assert (finding.start.line, finding.start.column) == (4, 1)


def test_tweak_after_another_objects_eval_is_silent_in_async_code() -> None:
    source = "async def f(net):\n    net.eval()\n    net.head.training = True\n"
    assert lint(source, ["BN008"]) == []


def test_trigger_pattern_admits_every_spelling_of_the_assignment() -> None:
    import re

    from bnlint.registry import all_rules

    pattern = all_rules()["BN008"].trigger_pattern
    assert pattern is not None
    for spelling in (
        "m.training = False",
        "m.training=False",
        "m . training  =  False",
        "(m.training) = False",
        "m.training \\\n    = False",
    ):
        assert re.search(pattern, spelling), spelling
        assert lint(spelling + "\nm.parameters()\n", ["BN008"]), spelling
    for other in ("if m.training == False: pass", "flag = m.training", "def train(self): pass"):
        assert not re.search(pattern, other), other


def test_flag_of_an_object_not_known_to_be_a_module_is_silent() -> None:
    source = (
        "from stable_baselines3.common.vec_env import VecNormalize\n"
        "def load_env(path, env):\n"
        "    env = VecNormalize.load(path, env)\n"
        "    env.training = False\n"
        "    env.norm_reward = False\n"
        "    return env\n"
    )
    assert lint(source, ["BN008"]) == []


def test_flag_of_a_model_zoo_result_is_reported() -> None:
    source = (
        "from .zoo import inception\n"
        "def load(layer):\n"
        "    net = inception(pretrained=True)\n"
        "    net.training = False\n"
        "    return net\n"
    )
    assert [f.start.line for f in lint(source, ["BN008"])] == [4]


def test_flag_of_a_name_with_module_only_methods_is_reported() -> None:
    source = (
        "def restore(model, path):\n"
        "    model.load_state_dict(torch.load(path))\n"
        "    model.training = False\n"
    )
    assert [f.start.line for f in lint(source, ["BN008"])] == [3]


def test_flag_of_a_part_of_a_called_model_is_reported() -> None:
    source = "def probe(model, x):\n    model.head.training = False\n    return model(x)\n"
    assert [f.start.line for f in lint(source, ["BN008"])] == [2]


def test_flag_of_a_torch_function_result_is_silent() -> None:
    source = (
        "import torch\n"
        "def f(x):\n"
        "    state = torch.zeros(3)\n"
        "    state.training = False\n"
        "    return torch.relu(state)\n"
    )
    assert lint(source, ["BN008"]) == []


def test_flag_followed_by_a_real_mode_call_before_the_next_forward_is_silent() -> None:
    source = (
        "def evaluate(model, x):\n"
        "    model.training = False\n"
        "    model.eval()\n"
        "    return model(x)\n"
    )
    assert lint(source, ["BN008"]) == []


def test_flag_used_by_a_forward_before_the_mode_call_is_reported() -> None:
    source = (
        "def evaluate(model, x):\n"
        "    model.training = False\n"
        "    y = model(x)\n"
        "    model.eval()\n"
        "    return y\n"
    )
    assert [f.start.line for f in lint(source, ["BN008"])] == [2]


def test_flag_set_on_every_module_of_a_modules_loop_is_silent() -> None:
    source = (
        "import torch.nn as nn\n"
        "def freeze_bn(model):\n"
        "    for m in model.modules():\n"
        "        if isinstance(m, nn.BatchNorm2d):\n"
        "            m.training = False\n"
        "            for p in m.parameters():\n"
        "                p.requires_grad = False\n"
        "    return model(x)\n"
    )
    assert lint(source, ["BN008"]) == []


def test_flag_set_on_each_direct_child_only_is_reported() -> None:
    source = (
        "def freeze(model, x):\n"
        "    for child in model.children():\n"
        "        child.training = False\n"
        "        child.zero_grad()\n"
        "    return model(x)\n"
    )
    assert [f.start.line for f in lint(source, ["BN008"])] == [3]
