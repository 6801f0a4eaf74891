"""The index's freeze facts (BN005): what a class's constructor freezes on the instance
(through a helper in another file, a method of its own, a base class), what a model's
freeze method freezes, which project class a key is an instance of, and the module-loop
freeze of BN affine parameters."""

from __future__ import annotations

import textwrap

from bnlint.index.freezes import (
    averaged_keys,
    averaged_parts,
    constructor_freezes,
    helper_freezes,
    instance_part_kind,
    key_classes,
    method_freezes,
)
from tests.test_index import index_of

HELPERS = """
    def freeze_module(module):
        for p in module.parameters():
            p.requires_grad = False

    def bn_eval(module):
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()

    def validate(model, loader):
        model.eval()
        for x in loader:
            model(x)
"""

NETS = """
    import torch.nn as nn
    from pkg.helpers import freeze_module

    class Stem(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, bias=False)
            self.bn = nn.BatchNorm2d(8)
            freeze_module(self.conv)
            freeze_module(self.bn)

    class Deeper(Stem):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 2)

    class SelfFrozen(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
            self.freeze_bn()

        def freeze_bn(self):
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()

    class Flagged(nn.Module):
        def __init__(self, freeze_bn=False):
            super().__init__()
            self.freeze_bn = freeze_bn
            self.bn = nn.BatchNorm2d(8)

        def freeze_bn(self):
            self.bn.eval()

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(8)
"""

SCRIPT = """
    from pkg.nets import Deeper, SelfFrozen
    from pkg.helpers import freeze_module, bn_eval, validate

    def make(kind):
        return Deeper() if kind else SelfFrozen()

    def run(loader):
        model = make(1)
        net = model
        freeze_module(model.layer1)
        bn_eval(model.layer2)
        validate(model, loader)
        net.train()
"""


def _index():  # type: ignore[no-untyped-def]
    return index_of(
        {
            "/project/pkg/helpers.py": "import torch.nn as nn\n" + textwrap.dedent(HELPERS),
            "/project/pkg/nets.py": NETS,
            "/project/train.py": SCRIPT,
        }
    )


def test_constructor_freeze_through_a_helper_in_another_file() -> None:
    index = _index()
    frozen = constructor_freezes(index, "/project/pkg/nets.py", "Stem")
    assert [(f.key, f.how, f.line) for f in frozen] == [
        ("self.conv", "params", 10),
        ("self.bn", "params", 11),
    ]
    assert instance_part_kind(index, "/project/pkg/nets.py", "Stem", "self.bn") == "bn"
    assert instance_part_kind(index, "/project/pkg/nets.py", "Stem", "self.conv") == "none"


def test_constructor_freeze_of_a_base_class_reaches_the_subclass() -> None:
    frozen = constructor_freezes(_index(), "/project/pkg/nets.py", "Deeper")
    assert {f.key for f in frozen} == {"self.conv", "self.bn"}


def test_constructor_calling_its_own_freeze_method_freezes_the_instance() -> None:
    frozen = constructor_freezes(_index(), "/project/pkg/nets.py", "SelfFrozen")
    assert [(f.key, f.how, f.line) for f in frozen] == [("self", "eval", 22)]


def test_a_class_without_freezes_has_none() -> None:
    assert constructor_freezes(_index(), "/project/pkg/nets.py", "Plain") == []


def test_an_instance_attribute_shadows_a_freeze_method() -> None:
    index = _index()
    assert method_freezes(index, "/project/pkg/nets.py", "Flagged", "freeze_bn") is None
    assert method_freezes(index, "/project/pkg/nets.py", "SelfFrozen", "freeze_bn") == [
        ("self", "eval", (25, 8, 27, 24))
    ]


def test_key_classes_follow_factories_aliases_and_conditional_returns() -> None:
    index = _index()
    expected = {("/project/pkg/nets.py", "Deeper"), ("/project/pkg/nets.py", "SelfFrozen")}
    assert key_classes(index, "/project/train.py", "run", "model") == expected
    assert key_classes(index, "/project/train.py", "run", "net") == expected
    assert key_classes(index, "/project/train.py", "run", "loader") == frozenset()


def test_helper_freezes_keep_part_evals_and_drop_whole_model_evaluation() -> None:
    index = _index()
    facts = index.function_facts("/project/train.py", "run")
    assert facts is not None
    calls = [e for e in facts["events"] if e["k"] == "call" and e["fn"] != "~make"]
    found = [helper_freezes(index, "/project/train.py", "run", e) for e in calls]
    # freeze_module(model.layer1), bn_eval(model.layer2), validate(model, loader)
    assert found == [[("model.layer1", "params")], [("model.layer2", "eval")], []]


def test_batchnorm_affine_freeze_in_a_modules_loop_is_a_freeze_event() -> None:
    index = index_of(
        {
            "/project/s.py": """
                import torch.nn as nn

                def setup(model):
                    for m in model.modules():
                        if isinstance(m, nn.BatchNorm2d):
                            m.weight.requires_grad = False
                    for m in model.modules():
                        if isinstance(m, nn.BatchNorm2d):
                            m.eval()
                            m.weight.requires_grad = False
            """
        }
    )
    facts = index.function_facts("/project/s.py", "setup")
    assert facts is not None
    kinds = [(e["k"], e["key"]) for e in facts["events"] if e["k"] in ("freeze", "bn_eval")]
    assert kinds == [("freeze", "model"), ("bn_eval", "model")]


def test_a_models_freeze_method_call_is_recorded() -> None:
    index = index_of(
        {
            "/project/s.py": """
                def go(net):
                    net.train()
                    net.module.freeze_bn()
                    net.unrelated()
            """
        }
    )
    facts = index.function_facts("/project/s.py", "go")
    assert facts is not None
    methods = [(e["key"], e["fn"]) for e in facts["events"] if e["k"] == "method"]
    assert methods == [("net", "freeze_bn")]


def test_constructor_calling_a_same_file_helper_of_any_name_freezes() -> None:
    index = index_of(
        {
            "/project/m.py": """
                import torch.nn as nn

                def lock(module):
                    for p in module.parameters():
                        p.requires_grad = False

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.bn = nn.BatchNorm2d(4)
                        lock(self.bn)
            """
        }
    )
    assert [f.key for f in constructor_freezes(index, "/project/m.py", "Net")] == ["self.bn"]


def test_an_initialiser_passed_to_apply_is_not_a_batchnorm_freeze() -> None:
    index = index_of(
        {
            "/project/s.py": """
                def setup(model, other):
                    model.apply(weights_init_normal)
                    model.apply(init_bn)
                    other.apply(set_bn_eval)
                    model.train()
            """
        }
    )
    facts = index.function_facts("/project/s.py", "setup")
    assert facts is not None
    assert [e["key"] for e in facts["events"] if e["k"] == "bn_eval"] == ["other"]


def test_moving_average_loops_mark_momentum_encoders() -> None:
    index = index_of(
        {
            "/project/m.py": """
                import torch.nn as nn

                class Pair(nn.Module):
                    def __init__(self, a, b):
                        super().__init__()
                        self.online = a
                        self.target = b

                    def follow(self, m):
                        for p, q in zip(self.online.parameters(), self.target.parameters()):
                            q.data.mul_(m).add_(p.data * (1 - m))

                def ema(student, teacher):
                    for s, t in zip(student.parameters(), teacher.parameters()):
                        t.copy_(s)

                def run(net, slow):
                    net.train()
                    ema(net, slow)
            """
        }
    )
    assert averaged_parts(index, "/project/m.py", "Pair") == {"self.online", "self.target"}
    assert averaged_keys(index, "/project/m.py", "run") == {"net", "slow"}


def test_a_base_constructor_in_another_file_dispatches_methods_on_the_subclass() -> None:
    index = index_of(
        {
            "/project/base.py": """
                import torch.nn as nn

                class Base(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.stem = nn.BatchNorm2d(4)
                        self._freeze_stages()

                    def _freeze_stages(self):
                        pass
            """,
            "/project/sub.py": """
                from base import Base

                class Sub(Base):
                    def _freeze_stages(self):
                        self.stem.eval()
            """,
        }
    )
    frozen = constructor_freezes(index, "/project/sub.py", "Sub")
    assert [(f.key, f.how, f.path) for f in frozen] == [("self.stem", "eval", "/project/base.py")]
    assert constructor_freezes(index, "/project/base.py", "Base") == []


def test_reopening_parameters_is_an_unfreeze_event() -> None:
    index = index_of(
        {
            "/project/s.py": """
                def probe(model):
                    for p in model.parameters():
                        p.requires_grad = False
                    for p in model.head.parameters():
                        p.requires_grad = True
                    model.fc.requires_grad_()
                    for k, v in model.named_parameters():
                        v.requires_grad = True
                        if "backbone" in k:
                            v.requires_grad = False
                    model.train()
            """
        }
    )
    facts = index.function_facts("/project/s.py", "probe")
    assert facts is not None
    found = [(e["k"], e["key"]) for e in facts["events"] if e["k"] in ("freeze", "unfreeze")]
    assert found == [
        ("freeze", "model"),
        ("unfreeze", "model.head"),
        ("unfreeze", "model.fc"),
        ("freeze", "model"),
    ]
