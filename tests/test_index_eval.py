"""The program model on the ways real projects build, pass and load models, as BN002
reads them: layers from a class's own helpers, modules held from constructor
arguments, methods of project objects, imports inside functions, wrapped loaders,
project loaders that return eval models."""

from __future__ import annotations

import textwrap

from bnlint.index import summarize_file
from bnlint.index.eval_context import (
    built_in_eval,
    certainly_bn,
    loaded_for_inference,
    mode_through_lists,
)
from tests.test_index import index_of


def test_layers_built_by_a_helper_method_filling_an_ordered_dict_count() -> None:
    index = index_of(
        {
            "/project/net.py": """
                from collections import OrderedDict
                import torch.nn as nn

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.stage = self._make_stage(16)
                        self.fc = nn.Linear(16, 2)

                    def _make_stage(self, width):
                        parts = OrderedDict()
                        parts["conv"] = nn.Conv2d(3, width, 3, bias=False)
                        parts["bn"] = nn.BatchNorm2d(width)
                        return nn.Sequential(parts)
            """
        }
    )
    assert index.class_kind("/project/net.py", "Net") == "bn"


def test_layers_from_a_helper_method_without_bn_are_not_bn() -> None:
    index = index_of(
        {
            "/project/net.py": """
                import torch.nn as nn

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.stage = self._make_stage(16)

                    def _make_stage(self, width):
                        return nn.Sequential(nn.Conv2d(3, width, 3), nn.GroupNorm(4, width))
            """
        }
    )
    assert index.class_kind("/project/net.py", "Net") == "none"


def test_sequential_of_a_resnets_children_keeps_its_batchnorm() -> None:
    index = index_of(
        {
            "/project/net.py": """
                import torch.nn as nn
                import torchvision

                class Encoder(nn.Module):
                    def __init__(self, name):
                        super().__init__()
                        trunk = torchvision.models.resnet18()
                        headless = nn.Sequential(*list(trunk.children())[:-1])
                        self.add_module(f"trunk_{name}", headless)
            """
        }
    )
    assert index.class_kind("/project/net.py", "Encoder") == "bn"


def test_a_class_holding_a_passed_module_is_known_per_instantiation() -> None:
    files = {
        "/project/net.py": """
            import torch.nn as nn

            def features(with_bn):
                layers = [nn.Conv2d(3, 8, 3, bias=False)]
                if with_bn:
                    layers += [nn.BatchNorm2d(8)]
                return nn.Sequential(*layers)

            class Holder(nn.Module):
                def __init__(self, body, classes=10):
                    super().__init__()
                    self.body = body
                    self.fc = nn.Linear(8, classes)

                def forward(self, x):
                    return self.fc(self.body(x).mean((2, 3)))

            a = Holder(features(True))
            b = Holder(nn.Conv2d(3, 8, 3))
        """
    }
    index = index_of(files)
    assert index.class_kind("/project/net.py", "Holder") is None
    assert index.key_kind("/project/net.py", "<module>", "a") == "bn"
    assert index.key_kind("/project/net.py", "<module>", "b") == "none"


def test_a_method_called_on_a_project_object_is_followed_to_the_method() -> None:
    index = index_of(
        {
            "/project/solver.py": """
                import torch

                class Solver:
                    def train(self, loader, task_model):
                        task_model.train()
                        return self.score(task_model)

                    def score(self, task_model):
                        with torch.no_grad():
                            return task_model(x)
            """,
            "/project/main.py": """
                import torchvision
                from solver import Solver

                def main(loader):
                    solver = Solver()
                    net = torchvision.models.resnet18()
                    solver.train(loader, net)
            """,
        }
    )
    callers = index.callers("/project/solver.py", "Solver.train")
    assert [(path, function) for path, function, _ in callers] == [("/project/main.py", "main")]
    events = index.function_facts("/project/main.py", "main")["events"]  # type: ignore[index]
    assert not any(e["k"] in ("train", "setmode") for e in events)
    assert index.key_kind("/project/solver.py", "Solver.score", "task_model") == "bn"


def test_imports_inside_a_function_name_its_models() -> None:
    index = index_of(
        {
            "/project/algo.py": """
                import torch.nn as nn

                class Algo:
                    def __init__(self, args):
                        self.phi = self.get_model(args)

                    def get_model(self, args):
                        if args.arch == "small":
                            from nets import Tiny
                            phi = Tiny()
                        if args.arch == "resnet":
                            from torchvision.models import resnet50
                            phi = resnet50()
                        phi = phi.to(args.device)
                        return phi

                    def test(self, x):
                        return self.phi(x)
            """,
            "/project/nets.py": """
                import torch.nn as nn

                class Tiny(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(4, 2)
            """,
        }
    )
    assert index.key_kind("/project/algo.py", "Algo.test", "self.phi") == "bn"
    # One candidate (Tiny) has no BatchNorm: a possible BN model, not a certain one.
    assert not certainly_bn(index, "/project/algo.py", "Algo.test", "self.phi")


def test_a_loop_over_a_wrapped_loader_iterates_that_loader() -> None:
    summary = summarize_file(
        "s.py",
        "from tqdm import tqdm\n"
        "def run(model, train_loader, test_loader):\n"
        "    batches = tqdm(train_loader)\n"
        "    for x in batches:\n"
        "        model(x)\n"
        "    batches = tqdm(enumerate(test_loader), total=10)\n"
        "    for i, x in batches:\n"
        "        model(x)\n",
    )
    loops = summary.functions["run"]["loops"]
    assert [loop["iter"] for loop in loops] == ["train_loader", "test_loader"]


def test_a_script_that_loads_weights_and_never_trains_runs_inference() -> None:
    text = """
        import torch
        from net import Net

        model = Net()
        model.load_state_dict(torch.load("best.pt"))
        out = model(x)
    """
    index = index_of({"/project/s.py": text})
    facts = index.function_facts("/project/s.py", "<module>")
    assert facts is not None
    forward = next(i for i, e in enumerate(facts["events"]) if e["k"] == "forward")
    assert loaded_for_inference(facts, forward, "model")
    trained = index_of({"/project/s.py": text.rstrip() + "\n        train(model, loader)\n"})
    facts = trained.function_facts("/project/s.py", "<module>")
    assert facts is not None
    assert not loaded_for_inference(facts, forward, "model")


def test_a_project_loader_or_wrapper_that_sets_eval_hands_back_an_eval_model() -> None:
    index = index_of(
        {
            "/project/s.py": """
                import torch
                import torch.nn as nn

                def load(path):
                    models = nn.ModuleList()
                    models.append(torch.load(path).fuse().eval())
                    return models[-1]

                class Traced(nn.Module):
                    def __init__(self, model):
                        super().__init__()
                        self.model = model
                        self.model.eval()

                def plain(path):
                    return torch.load(path)

                def detect(path, x):
                    model = load(path)
                    traced = Traced(model)
                    raw = plain(path)
                    return model(x), traced(x), raw(x)
            """
        }
    )
    facts = index.function_facts("/project/s.py", "detect")
    assert facts is not None
    assert built_in_eval(index, "/project/s.py", facts, "model")
    assert built_in_eval(index, "/project/s.py", facts, "traced")
    assert not built_in_eval(index, "/project/s.py", facts, "raw")


def test_models_switched_through_a_list_helper_and_an_inline_loop() -> None:
    index = index_of(
        {
            "/project/s.py": """
                import torch.nn as nn
                from nets import Net

                def switch(networks, mode):
                    for n in networks:
                        n.train(mode)

                def to_eval(networks):
                    for n in networks:
                        n.eval()

                def run(x):
                    a, b, c = Net(), Net(), Net()
                    to_eval([a, b])
                    for m in (c,):
                        m.eval()
                    return a(x), b(x), c(x)
            """
        }
    )
    facts = index.function_facts("/project/s.py", "run")
    assert facts is not None
    events = facts["events"]
    call = next(e for e in events if e["k"] == "call" and e["fn"].endswith("to_eval"))
    assert call["lists"] == {"#0": ["a", "b"]}
    assert any(e["k"] == "eval" and e["key"] == "c" for e in events)
    end = len(events)
    assert mode_through_lists(index, "/project/s.py", "run", events, end, "a") == "eval"
    assert mode_through_lists(index, "/project/s.py", "run", events, end, "c") is None


CLOSURES = """
    import torch
    import torchvision

    def train(loader, epochs):
        model = torchvision.models.resnet18()

        def validate():
            with torch.no_grad():
                for images, labels in loader:
                    hits = model(images).argmax(1) == labels

        class Probe:
            def run(self):
                pass

        for epoch in range(epochs):
            model.eval()
            validate()

    class Trainer:
        def fit(self, net):
            def epoch():
                net.train()
                return net(self.batch)

            return epoch()
"""


def test_nested_functions_are_summarised_under_the_path_of_their_enclosers() -> None:
    summary = summarize_file("/project/train.py", textwrap.dedent(CLOSURES))
    assert "train/validate" in summary.functions
    assert "Trainer.fit/epoch" not in summary.functions
    assert "fit/epoch" in summary.classes["Trainer"]["methods"]
    assert summary.classes["Trainer"]["methods"]["fit/epoch"]["owner"] == "Trainer"
    # A class inside a function is not entered.
    assert not any("run" in name for name in summary.functions)


def test_a_closure_forward_runs_the_enclosing_functions_model() -> None:
    index = index_of({"/project/train.py": CLOSURES})
    facts = index.function_facts("/project/train.py", "train/validate")
    assert facts is not None
    forwards = [e["key"] for e in facts["events"] if e["k"] == "forward"]
    assert forwards == ["model"]
    assert index.key_kind("/project/train.py", "train/validate", "model") == "bn"


def test_a_call_of_a_nested_function_resolves_to_it() -> None:
    index = index_of({"/project/train.py": CLOSURES})
    path = "/project/train.py"
    assert index.resolve_function(path, "train", "validate") == (path, "train/validate")
    assert index.resolve_function(path, "Trainer.fit", "epoch") == (path, "Trainer.fit/epoch")
    callers = index.callers(path, "train/validate")
    assert [(caller, event["fn"]) for _, caller, event in callers] == [("train", "validate")]
