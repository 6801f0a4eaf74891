from bnlint.registry import default_codes
from tests.conftest import lint


def test_rule_is_off_by_default() -> None:
    assert "BN036" not in default_codes()


def test_missing_shuffle_fix_goes_after_the_last_argument() -> None:
    source = (
        "from torch.utils.data import DataLoader\n"
        "train_loader = DataLoader(\n    train_set,\n    batch_size=8,\n)\n"
    )
    (finding,) = lint(source, ["BN036"])
    assert finding.fix is not None
    (edit,) = finding.fix.edits
    assert (edit.start.line, edit.content) == (4, ", shuffle=True")


def test_unresolved_dataloader_is_not_reported() -> None:
    assert lint("train_loader = DataLoader(train_set, batch_size=8)\n", ["BN036"]) == []
