"""BN038: the 2..threshold-1 range, and where BN016 or SyncBatchNorm take over."""

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


def script(batch: str, header: str = HEADER) -> str:
    return (
        header + f"loader = DataLoader(ds, batch_size={batch}, shuffle=True)\n"
        "for x, y in loader:\n    model(x).sum().backward()\n"
    )


def bn038(source: str, **options: object) -> list[Finding]:
    settings = {**RULE_OPTIONS, **options}
    return lint_text("train.py", source, [all_rules()["BN038"]], ProjectIndex.empty(), settings)


def test_rule_is_off_by_default_and_advice() -> None:
    assert "BN038" not in default_codes()
    assert all_rules()["BN038"].severity.value == "info"


def test_batches_of_two_to_seven_are_reported_at_the_loader() -> None:
    for batch in ("2", "7"):
        (finding,) = bn038(script(batch))
        assert finding.start.line == 4
        assert f"batches of {batch}" in finding.message
        assert "line 4" in finding.suggestion


def test_one_and_the_threshold_itself_are_silent() -> None:
    assert bn038(script("1")) == []  # BN003's
    assert bn038(script("8")) == []


def test_threshold_option_moves_the_upper_bound() -> None:
    assert len(bn038(script("12"), **{"small-batch-threshold": 16})) == 1
    assert bn038(script("4"), **{"small-batch-threshold": 4}) == []


def test_module_constant_batch_is_resolved() -> None:
    assert len(bn038(script("BATCH", HEADER + "BATCH = 3\n"))) == 1


def test_distributed_or_syncbn_files_are_left_to_bn016() -> None:
    ddp = HEADER + "from torch.nn.parallel import DistributedDataParallel as DDP\n"
    assert bn038(script("4", ddp)) == []
    sync = HEADER + "model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)\n"
    assert bn038(script("4", sync)) == []
