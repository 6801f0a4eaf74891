"""BN016's static check: the small per-process batch, the conversion after wrapping,
the option, and the fix's spelling and placement."""

from __future__ import annotations

from bnlint.config import RULE_OPTIONS
from bnlint.engine.lint import lint_text
from bnlint.finding import Finding, Severity
from bnlint.fix.edits import apply_edits
from bnlint.index import ProjectIndex
from bnlint.registry import all_rules, default_codes
from tests.conftest import lint

HEADER = (
    "import torch\nimport torchvision\n"
    "from torch.nn.parallel import DistributedDataParallel as DDP\n"
    "from torch.utils.data import DataLoader\n"
)


def script(batch: str, header: str = HEADER) -> str:
    return (
        header + "def main(rank):\n"
        "    model = torchvision.models.resnet50().cuda(rank)\n"
        "    model = DDP(model, device_ids=[rank])\n"
        f"    loader = DataLoader(ds, batch_size={batch})\n"
        "    for x, y in loader:\n"
        "        model(x).sum().backward()\n"
    )


def bn016(source: str, **options: object) -> list[Finding]:
    rule = all_rules()["BN016"]
    settings = {**RULE_OPTIONS, **options}
    return lint_text("train.py", source, [rule], ProjectIndex.empty(), settings)


def test_rule_is_on_by_default_with_both_engines() -> None:
    assert "BN016" in default_codes()
    assert all_rules()["BN016"].engines == ("static", "runtime")


def test_small_literal_batch_is_reported_at_the_wrap() -> None:
    (finding,) = bn016(script("4"))
    assert (finding.start.line, finding.code) == (7, "BN016")
    assert "batches of 4" in finding.message


def test_threshold_is_inclusive_and_read_from_the_options() -> None:
    assert [f.start.line for f in bn016(script("8"))] == [7]
    assert bn016(script("16")) == []
    assert [f.start.line for f in bn016(script("16"), **{"small-batch-threshold": 16})] == [7]


def test_batch_from_a_parameter_default_is_not_trusted() -> None:
    source = script("batch_size").replace("def main(rank):", "def main(rank, batch_size=4):")
    assert bn016(source) == []


def test_any_syncbatchnorm_mention_silences_the_small_batch_check() -> None:
    flag = "parser.add_argument('--sync-bn', action='store_true')\n"
    assert bn016(script("4", HEADER + flag)) == []


def test_fix_converts_before_the_wrap_with_the_files_torch_name() -> None:
    (finding,) = bn016(script("4"))
    assert finding.fix is not None
    fixed = apply_edits(script("4"), list(finding.fix.edits))
    assert (
        "    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)\n"
        "    model = DDP(model, device_ids=[rank])\n"
    ) in fixed
    assert bn016(fixed) == []


def test_no_fix_when_neither_torch_nor_torch_nn_is_imported_by_name() -> None:
    header = (
        "from torchvision.models import resnet50\n"
        "from torch.nn.parallel import DistributedDataParallel as DDP\n"
        "from torch.utils.data import DataLoader\n\n"
    )
    source = script("4", header).replace("torchvision.models.resnet50()", "resnet50()")
    (finding,) = bn016(source)
    assert finding.fix is None
    assert "convert_sync_batchnorm(model)" in finding.suggestion


def test_wrap_not_tied_to_the_small_loaders_loop_is_silent() -> None:
    source = (
        HEADER + "def main(rank):\n"
        "    model = torchvision.models.resnet50().cuda(rank)\n"
        "    teacher = DDP(torchvision.models.resnet18().cuda(rank), device_ids=[rank])\n"
        "    loader = DataLoader(ds, batch_size=4)\n"
        "    for x, y in loader:\n"
        "        model(x).sum().backward()\n"
    )
    assert bn016(source) == []


def test_conversion_after_the_wrap_is_reported() -> None:
    source = (
        "import torch.nn as nn\n"
        "def build(model, rank, sync):\n"
        "    model = nn.parallel.DistributedDataParallel(model, device_ids=[rank])\n"
        "    if sync:\n"
        "        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)\n"
        "    return model\n"
    )
    (finding,) = bn016(source)
    assert finding.start.line == 5
    assert finding.fix is None
    assert "line 3" in finding.message
    assert finding.severity is Severity.ERROR  # RULES.md: this variant is an error


def test_small_batch_finding_keeps_the_rules_warning_severity() -> None:
    (finding,) = bn016(script("4"))
    assert finding.severity is Severity.WARNING


def test_conversion_in_the_other_branch_or_before_the_wrap_is_silent() -> None:
    exclusive = (
        "import torch.nn as nn\n"
        "def build(model, rank, distributed):\n"
        "    if distributed:\n"
        "        model = nn.parallel.DistributedDataParallel(model, device_ids=[rank])\n"
        "    else:\n"
        "        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)\n"
        "    return model\n"
    )
    before = (
        "import torch.nn as nn\n"
        "def build(model, rank):\n"
        "    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)\n"
        "    model = nn.parallel.DistributedDataParallel(model, device_ids=[rank])\n"
        "    model = nn.SyncBatchNorm.convert_sync_batchnorm(other)\n"
        "    return model\n"
    )
    assert bn016(exclusive) == []
    assert bn016(before) == []


def test_rebinding_between_wrap_and_conversion_is_silent() -> None:
    source = (
        "import torch.nn as nn\n"
        "def build(net, rank):\n"
        "    model = nn.parallel.DistributedDataParallel(net, device_ids=[rank])\n"
        "    model = make_student()\n"
        "    return nn.SyncBatchNorm.convert_sync_batchnorm(model)\n"
    )
    assert bn016(source) == []


def test_unresolved_ddp_name_is_silent() -> None:
    source = script(
        "4", "import torch\nimport torchvision\nfrom torch.utils.data import DataLoader\n"
    )
    assert lint(source, ["BN016"]) == []
