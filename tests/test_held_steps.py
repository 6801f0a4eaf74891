"""A plain trainer that keeps the object it is given (`self.learner = learner`) and
calls its `step(batch, phase)` in a loop: the loop trains that object when every class
it may be has a `step` that calls `backward()` for the phase passed, and a wrapper that
builds its network from a class passed to it has that network's kind
(bnlint.index.steppers, bnlint.index.receivers, ProjectIndex.key_kind)."""

from __future__ import annotations

import textwrap

from bnlint.index import ProjectIndex, summarize_file
from bnlint.index.steppers import stepped_models

NETS = """
    import torch.nn as nn

    class Encoder(nn.Module):
        def __init__(self, opts):
            super().__init__()
            self.body = nn.Sequential(nn.Conv1d(3, 8, 1), nn.BatchNorm1d(8))

        def forward(self, x):
            return self.body(x)

    class PlainEncoder(nn.Module):
        def __init__(self, opts):
            super().__init__()
            self.body = nn.Sequential(nn.Conv1d(3, 8, 1), nn.GroupNorm(2, 8))

        def forward(self, x):
            return self.body(x)
"""

WRAPPERS = """
    import torch

    class Wrapper:
        def __init__(self, opts, net_cls):
            self.net = net_cls(opts)
            self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)

        def step(self, batch, phase):
            loss = self.net(batch).mean()
            if phase == "train":
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
            return loss

    class Child(Wrapper):
        def __init__(self, opts, net_cls):
            super().__init__(opts, net_cls)
"""

TRAINER = """
    class Runner:
        def __init__(self, worker, loader):
            self.worker = worker
            self.loader = loader

        def epoch(self):
            for batch in self.loader:
                self.worker.step(batch, "train")

        def check(self):
            for batch in self.loader:
                self.worker.step(batch, "eval")
"""

MAIN = """
    from nets import Encoder, PlainEncoder
    from wrappers import Wrapper, Child
    from runner import Runner

    if flag:
        worker = Child(opts, {first})
    else:
        worker = Wrapper(opts, {second})
    Runner(worker, loader).epoch()
"""


def index_of(first: str = "Encoder", second: str = "Encoder") -> ProjectIndex:
    files = {
        "/project/nets.py": NETS,
        "/project/wrappers.py": WRAPPERS,
        "/project/runner.py": TRAINER,
        "/project/main.py": MAIN.format(first=first, second=second),
    }
    summaries = {path: summarize_file(path, textwrap.dedent(text)) for path, text in files.items()}
    return ProjectIndex.from_summaries("/project", summaries)


def stepped(index: ProjectIndex, method: str) -> list[str]:
    facts = index.function_facts("/project/runner.py", method)
    assert facts is not None
    return stepped_models(index, "/project/runner.py", method, facts, facts["loops"][0])


def test_a_kept_object_whose_step_calls_backward_is_trained_by_the_loop() -> None:
    assert stepped(index_of(), "Runner.epoch") == ["self.worker"]


def test_a_step_called_with_a_phase_its_backward_is_not_under_trains_nothing() -> None:
    assert stepped(index_of(), "Runner.check") == []


def test_a_wrapper_has_the_kind_of_the_class_it_builds_through_its_base() -> None:
    index = index_of()
    assert index.key_kind("/project/main.py", "<module>", "worker") == "bn"
    assert index.key_kind("/project/runner.py", "Runner.epoch", "self.worker") == "bn"


def test_a_wrapper_of_a_network_without_batchnorm_is_not_a_bn_model() -> None:
    index = index_of("PlainEncoder", "PlainEncoder")
    assert index.key_kind("/project/runner.py", "Runner.epoch", "self.worker") != "bn"


def test_a_kept_object_whose_class_is_unknown_on_one_branch_is_not_followed() -> None:
    files = MAIN.format(first="Encoder", second="Encoder").replace(
        "worker = Wrapper(opts, Encoder)", "worker = make_worker()"
    )
    index = index_of()
    summaries = dict(index.summaries)
    summaries["/project/main.py"] = summarize_file("/project/main.py", textwrap.dedent(files))
    index = ProjectIndex.from_summaries("/project", summaries)
    assert stepped(index, "Runner.epoch") == []
