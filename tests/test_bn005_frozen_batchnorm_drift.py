"""BN005 across files: a class whose constructor freezes BatchNorm is reported at the
`.train()` that undoes it, and, when that `.train()` lives in another file, also at the
freeze in the class's own file (where the `train()` override belongs)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bnlint.config import Selection, load_settings
from bnlint.engine.run import check_paths

MODEL = """
    import torch.nn as nn


    def lock(module):
        for p in module.parameters():
            p.requires_grad = False


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, bias=False)
            self.norm = nn.BatchNorm2d(8)
            self.head = nn.Linear(8, 2)
            lock(self.norm)

        def forward(self, x):
            return self.head(self.norm(self.stem(x)).mean((2, 3)))
"""

TRAIN = """
    import torch
    from models import Net


    def main(loader):
        net = Net()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        for epoch in range(10):
            net.train()
            for x, y in loader:
                loss = torch.nn.functional.cross_entropy(net(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
"""

OVERRIDE = """

        def train(self, mode=True):
            super().train(mode)
            self.norm.eval()
            return self
"""


def _bn005(project: Path, *paths: str) -> set[tuple[str, int]]:
    settings = load_settings(project)
    enabled = settings.enabled_codes(Selection(select=("BN005",)))
    targets = [project / path for path in paths] or [project]
    result = check_paths(targets, settings, enabled, cwd=project, use_cache=False)
    return {(Path(f.path).name, f.start.line) for f in result.findings if f.code == "BN005"}


def _write(project: Path, model: str = MODEL) -> None:
    (project / "models.py").write_text(textwrap.dedent(model))
    (project / "train.py").write_text(textwrap.dedent(TRAIN))


def test_train_in_another_file_is_reported_there_and_at_the_freeze(project: Path) -> None:
    _write(project)
    assert _bn005(project) == {("train.py", 10), ("models.py", 16)}
    assert _bn005(project, "models.py") == {("models.py", 16)}
    assert _bn005(project, "train.py") == {("train.py", 10)}


def test_a_train_override_that_refreezes_silences_both(project: Path) -> None:
    _write(project, MODEL.rstrip() + textwrap.indent(textwrap.dedent(OVERRIDE), " " * 8))
    assert _bn005(project) == set()


def test_a_class_nobody_trains_is_silent(project: Path) -> None:
    _write(project)
    (project / "train.py").write_text("from models import Net\nnet = Net().eval()\n")
    assert _bn005(project) == set()
