"""BN006's static check: an `.eval()` that reaches the next `backward()` around a
training loop, across functions and files, and the look-alikes that stay silent."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bnlint.config import RULE_OPTIONS
from bnlint.engine.lint import lint_text
from bnlint.finding import Finding
from bnlint.index import ProjectIndex, summarize_file
from bnlint.registry import all_rules
from tests.conftest import lint

HEADER = "import torch\nimport torchvision\nmodel = torchvision.models.resnet18()\n"


def bn006(body: str) -> list[Finding]:
    return [f for f in lint(HEADER + textwrap.dedent(body), ["BN006"]) if f.code == "BN006"]


def lines(findings: list[Finding]) -> list[int]:
    return [f.start.line - HEADER.count("\n") for f in findings]


def bn006_in_project(files: dict[str, str], linted: str) -> list[Finding]:
    """Lint one file of a small project whose other files are in the index."""
    root = Path("/project")
    texts = {str(root / name): textwrap.dedent(text) for name, text in files.items()}
    index = ProjectIndex.from_summaries(
        str(root), {path: summarize_file(path, text) for path, text in texts.items()}
    )
    path = str(root / linted)
    rules = [all_rules()["BN006"]]
    return lint_text(path, texts[path], rules, index, dict(RULE_OPTIONS))


def test_eval_at_the_end_of_the_epoch_is_reported_on_its_line() -> None:
    found = bn006(
        """
        for epoch in range(3):
            for x, y in loader:
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
            model.eval()
        """
    )
    assert lines(found) == [6]
    assert "model.train()" in found[0].suggestion


def test_a_train_call_in_one_branch_is_trusted() -> None:
    assert not bn006(
        """
        for epoch in range(3):
            for x, y in loader:
                model(x).sum().backward()
            model.eval()
            if not freeze_bn:
                model.train()
        """
    )


def test_continue_after_the_eval_carries_it_to_the_next_step() -> None:
    found = bn006(
        """
        for step, (x, y) in enumerate(loader):
            if step % 100 == 0:
                model.eval()
                print(model(x))
                continue
            model(x).sum().backward()
        """
    )
    assert lines(found) == [4]


def test_eval_between_forward_and_backward_has_no_fix() -> None:
    found = bn006(
        """
        for step, (x, y) in enumerate(loader):
            if step % 100 == 0:
                model.eval()
            out = model(x)
            out.sum().backward()
        """
    )
    assert lines(found) == [4]
    assert found[0].fix is None


def test_part_of_the_model_kept_in_eval_every_epoch_is_silent() -> None:
    assert not bn006(
        """
        for epoch in range(3):
            model.train()
            model.layer1.eval()
            for x, y in loader:
                model(x).sum().backward()
        """
    )


def test_model_loaded_from_disk_is_unknown_and_silent() -> None:
    assert not bn006(
        """
        net = torch.load("net.pt")
        for epoch in range(3):
            for x, y in loader:
                net(x).sum().backward()
            net.eval()
        """
    )


def test_loop_without_backward_is_silent() -> None:
    assert not bn006(
        """
        for epoch in range(3):
            model.eval()
            for x, y in loader:
                print(model(x))
        """
    )


def test_module_level_model_used_by_name_inside_helpers() -> None:
    # The pytorch/examples MNIST layout, with the `model.train()` of `train` missing.
    found = bn006(
        """
        def train(epoch):
            for data, target in train_loader:
                loss = torch.nn.functional.nll_loss(model(data), target)
                loss.backward()

        def test():
            model.eval()
            with torch.no_grad():
                return sum(model(d).sum() for d, _ in test_loader)

        for epoch in range(1, 15):
            train(epoch)
            test()
        """
    )
    assert lines(found) == [14]
    assert "`test()` leaves `model` in eval mode" in found[0].message


def test_module_level_helpers_that_set_train_are_silent() -> None:
    assert not bn006(
        """
        def train(epoch):
            model.train()
            for data, target in train_loader:
                torch.nn.functional.nll_loss(model(data), target).backward()

        def test():
            model.eval()
            return sum(model(d).sum() for d, _ in test_loader)

        for epoch in range(1, 15):
            train(epoch)
            test()
        """
    )


VALIDATE = """
    import torch

    def validate(model, loader):
        model.eval()
        with torch.no_grad():
            return sum(model(x).sum().item() for x, _ in loader)
"""

TRAIN_SCRIPT = """
    import torch
    import torchvision
    from utils import validate

    model = torchvision.models.resnet18()
    for epoch in range(10):
        for x, y in loader:
            torch.nn.functional.cross_entropy(model(x), y).backward()
        validate(model, val_loader)
"""


def test_validate_in_another_file_is_followed_through_the_index() -> None:
    found = bn006_in_project({"utils.py": VALIDATE, "train.py": TRAIN_SCRIPT}, "train.py")
    assert [f.start.line for f in found] == [10]
    assert "utils.py:5" in found[0].message


def test_validate_in_another_file_that_restores_the_mode_is_silent() -> None:
    restoring = VALIDATE.replace("        return sum", "        loss = sum").rstrip() + (
        "\n        model.train()\n        return loss\n"
    )
    assert "model.train()" in restoring
    assert not bn006_in_project({"utils.py": restoring, "train.py": TRAIN_SCRIPT}, "train.py")


ENGINE = """
    import torch

    def train_one_epoch(model, loader, optimizer):
        {first}
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    def evaluate(model, loader):
        model.eval()
        with torch.no_grad():
            return sum(model(x).sum().item() for x, _ in loader)
"""

MAIN = """
    import torch
    import torchvision
    from engine import evaluate, train_one_epoch

    def main(train_loader, val_loader):
        model = torchvision.models.resnet50()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(90):
            train_one_epoch(model, train_loader, optimizer)
            evaluate(model, val_loader)
"""


def test_train_one_epoch_in_another_file_without_train_is_reported() -> None:
    engine = ENGINE.replace("{first}", "pass")
    found = bn006_in_project({"engine.py": engine, "main.py": MAIN}, "main.py")
    assert [f.start.line for f in found] == [11]
    assert found[0].fix is not None


def test_train_one_epoch_in_another_file_that_calls_train_is_silent() -> None:
    engine = ENGINE.replace("{first}", "model.train()")
    assert not bn006_in_project({"engine.py": engine, "main.py": MAIN}, "main.py")


def test_summaries_record_branches_jumps_and_calls_bnlint_cannot_follow() -> None:
    source = textwrap.dedent(
        """
        def fit(model, loader, callbacks):
            for x in loader:
                if x is None:
                    continue
                model.train(was_training)
                callbacks.on_step(model)
        """
    )
    facts = summarize_file("m.py", source).functions["fit"]
    kinds = [e["k"] for e in facts["events"]]
    assert kinds == ["jump", "use", "setmode", "opaque"]
    assert [b["k"] for b in facts["blocks"]] == ["loop", "if"]
    assert facts["events"][3]["args"] == ["model"]
