"""BN002's severity: an error only for a certain BatchNorm model in a context that
surely evaluates; a warning when either is only likely."""

from __future__ import annotations

import textwrap

from bnlint.finding import Severity
from tests.conftest import lint


def _severities(source: str) -> list[Severity]:
    return [f.severity for f in lint(textwrap.dedent(source), ["BN002"])]


def test_certain_bn_model_under_no_grad_is_an_error() -> None:
    assert _severities(
        """
        import torch, torchvision
        model = torchvision.models.resnet18()
        with torch.no_grad():
            out = model(images)
        """
    ) == [Severity.ERROR]


def test_a_context_known_only_by_the_function_name_is_a_warning() -> None:
    assert _severities(
        """
        import torchvision
        def evaluate(images):
            model = torchvision.models.resnet18()
            return model(images)
        """
    ) == [Severity.WARNING]


def test_a_model_that_may_be_loaded_whole_is_a_warning() -> None:
    assert _severities(
        """
        import torch, torchvision
        model = torchvision.models.resnet18()
        if resume:
            model = torch.load("whole_model.pt")
        with torch.no_grad():
            out = model(images)
        """
    ) == [Severity.WARNING]


def test_no_grad_forward_on_validation_data_inside_the_training_loop_is_reported() -> None:
    source = """
        import torch, torchvision
        model = torchvision.models.resnet18()
        for step, (x, y) in enumerate(train_loader):
            loss = criterion(model(x), y)
            loss.backward()
            if step % 100 == 0:
                with torch.no_grad():
                    score = model(val_images)
        """
    assert _severities(source) == [Severity.ERROR]
    assert _severities(source.replace("val_images", "x")) == []
