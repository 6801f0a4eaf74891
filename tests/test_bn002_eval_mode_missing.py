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


VALIDATION_WITH_TRAIN_CALL = """
    import torch
    from harness import build_network

    def fit(cfg, train_loader, val_loader, optimizer):
        net = build_network(cfg)
        for epoch in range(cfg.epochs):
            net.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(net(x), y).backward()
                optimizer.step()
            with torch.no_grad():
                for x, y in val_loader:
                    net.train()
                    val_loss = torch.nn.functional.cross_entropy(net(x), y)
    """


def test_a_train_call_inside_the_evaluation_of_an_unknown_model_is_a_warning_at_the_call() -> None:
    findings = lint(textwrap.dedent(VALIDATION_WITH_TRAIN_CALL), ["BN002"])
    assert [(f.start.line, f.severity) for f in findings] == [(15, Severity.WARNING)]
    # The model's kind is unknown: the message must not claim that it has BatchNorm.
    assert "has BatchNorm layers" not in findings[0].message
    assert "if the model has BatchNorm" in findings[0].message


def test_an_unknown_model_switched_to_train_before_the_evaluation_block_stays_silent() -> None:
    # Training mode set outside `no_grad` and outside the loop over validation batches:
    # whether that is a forgotten eval or a deliberate refresh is not visible here.
    source = VALIDATION_WITH_TRAIN_CALL.replace(
        "            with torch.no_grad():\n                for x, y in val_loader:\n"
        "                    net.train()\n",
        "            net.train()\n            with torch.no_grad():\n"
        "                for x, y in val_loader:\n",
    )
    assert "net.train()\n            with" in source
    assert _severities(source) == []


def test_an_unknown_model_whose_evaluation_calls_eval_instead_stays_silent() -> None:
    source = VALIDATION_WITH_TRAIN_CALL.replace(
        "                    net.train()", "                    net.eval()"
    )
    assert _severities(source) == []
