from __future__ import annotations

from tests.conftest import lint

BARE = "model.eval\n"


def test_finding_without_comment_is_reported() -> None:
    assert [f.code for f in lint(BARE, ["BN007"])] == ["BN007"]


def test_noqa_with_the_code_suppresses_it() -> None:
    assert lint("model.eval  # noqa: BN007\n", ["BN007"]) == []


def test_noqa_with_a_list_of_codes_suppresses_each() -> None:
    assert lint("model.eval  # noqa: BN004, BN007\n", ["BN007"]) == []


def test_noqa_with_another_code_does_not_suppress() -> None:
    assert [f.code for f in lint("model.eval  # noqa: BN004\n", ["BN007"])] == ["BN007"]


def test_bare_noqa_suppresses_everything_on_the_line() -> None:
    assert lint("model.eval  # noqa\n", ["BN007"]) == []


def test_noqa_accepts_the_rule_name_and_any_case() -> None:
    assert lint("model.eval  # NOQA: mode-method-not-called\n", ["BN007"]) == []


def test_noqa_on_another_line_does_not_suppress() -> None:
    assert len(lint("# noqa: BN007\nmodel.eval\n", ["BN007"])) == 1


def test_file_level_noqa_suppresses_the_whole_file() -> None:
    assert lint("# bnlint: noqa\nmodel.eval\nnet.train\n", ["BN007"]) == []


def test_file_level_noqa_with_codes_only_suppresses_those() -> None:
    source = "# bnlint: noqa: BN004\nmodel.eval\n"
    assert [f.code for f in lint(source, ["BN007"])] == ["BN007"]
    assert lint("# bnlint: noqa: BN007\nmodel.eval\n", ["BN007"]) == []


def test_file_level_marker_must_stand_on_its_own_line() -> None:
    assert len(lint("x = 1  # bnlint: noqa\nmodel.eval\n", ["BN007"])) == 1


def test_noqa_works_with_crlf_line_endings() -> None:
    assert lint("x = 1\r\nmodel.eval  # noqa: BN007\r\n", ["BN007"]) == []
