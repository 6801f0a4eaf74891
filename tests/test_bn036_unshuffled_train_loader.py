from bnlint.fix.edits import apply_edits
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


IMPORT = "from torch.utils.data import DataLoader\n"


def _fixed(source: str) -> str | None:
    (finding,) = lint(source, ["BN036"])
    return None if finding.fix is None else apply_edits(source, finding.fix.edits)


def test_missing_shuffle_goes_after_a_parenthesised_keyword_value() -> None:
    source = IMPORT + "train_loader = DataLoader(train_set, batch_size=(8))\n"
    assert _fixed(source) == source.replace("(8))", "(8), shuffle=True)")


def test_dataset_passed_by_keyword_is_read() -> None:
    source = IMPORT + "train_loader = DataLoader(dataset=train_set)\n"
    assert _fixed(source) == source.replace("train_set)", "train_set, shuffle=True)")


def test_parenthesised_last_positional_argument_is_reported_without_a_fix() -> None:
    source = IMPORT + "train_loader = DataLoader(\n    (train_set)  # all of it\n)\n"
    assert _fixed(source) is None


def test_shuffle_false_by_position_becomes_true() -> None:
    source = IMPORT + "train_loader = DataLoader(train_set, 64, (False), num_workers=2)\n"
    assert _fixed(source) == source.replace("(False)", "(True)")


def test_unpacked_keywords_may_carry_shuffle() -> None:
    assert lint(IMPORT + "train_loader = DataLoader(train_set, **loader_args)\n", ["BN036"]) == []
