"""BN031: what counts as gradient accumulation, and which micro-batches are small."""

from __future__ import annotations

from bnlint.config import RULE_OPTIONS
from bnlint.engine.lint import lint_text
from bnlint.finding import Finding
from bnlint.index import ProjectIndex
from bnlint.registry import all_rules, default_codes

HEADER = (
    "import torchvision\nfrom torch.utils.data import DataLoader\n"
    "model = torchvision.models.resnet18()\n"
)


def loop(body: str, batch: str = "4", header: str = HEADER) -> str:
    return (
        header + f"loader = DataLoader(ds, batch_size={batch})\n"
        "for i, (x, y) in enumerate(loader):\n" + body
    )


ACCUMULATE = (
    "    (model(x).sum() / 4).backward()\n"
    "    if (i + 1) % 4 == 0:\n"
    "        optimizer.step()\n"
    "        optimizer.zero_grad()\n"
)


def bn031(source: str, **options: object) -> list[Finding]:
    settings = {**RULE_OPTIONS, **options}
    return lint_text("train.py", source, [all_rules()["BN031"]], ProjectIndex.empty(), settings)


def test_rule_is_off_by_default_and_advice() -> None:
    assert "BN031" not in default_codes()
    assert all_rules()["BN031"].severity.value == "info"


def test_accumulation_is_reported_at_the_modulo_condition() -> None:
    (finding,) = bn031(loop(ACCUMULATE))
    assert finding.start.line == 7
    assert "every `4` iterations" in finding.message


def test_micro_batch_up_to_the_threshold_counts() -> None:
    assert len(bn031(loop(ACCUMULATE, batch="8"))) == 1
    assert bn031(loop(ACCUMULATE, batch="9")) == []
    assert len(bn031(loop(ACCUMULATE, batch="9"), **{"small-batch-threshold": 16})) == 1


def test_grad_scaler_step_counts_as_the_optimizer_step() -> None:
    body = ACCUMULATE.replace("optimizer.step()", "scaler.step(optimizer)")
    assert len(bn031(loop(body))) == 1


def test_accumulation_count_of_one_is_silent() -> None:
    assert bn031(loop(ACCUMULATE.replace("% 4", "% 1"))) == []
    constant = HEADER + "ACCUM = 1\n"
    assert bn031(loop(ACCUMULATE.replace("% 4", "% ACCUM"), header=constant)) == []


def test_backward_inside_the_guard_is_not_accumulation() -> None:
    body = (
        "    if i % 2 == 0:\n"
        "        optimizer.zero_grad()\n"
        "        model(x).sum().backward()\n"
        "        optimizer.step()\n"
    )
    assert bn031(loop(body)) == []


def test_string_formatting_modulo_is_not_a_counter() -> None:
    body = (
        "    model(x).sum().backward()\n"
        "    if '%d' % i == '10':\n"
        "        optimizer.step()\n"
        "        optimizer.zero_grad()\n"
    )
    assert bn031(loop(body)) == []


def test_model_without_batchnorm_is_silent() -> None:
    header = HEADER.replace("resnet18()", "vit_b_16()")
    assert bn031(loop(ACCUMULATE, header=header)) == []
