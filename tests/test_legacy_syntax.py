"""The reading of old code for the project index (bnlint.index.legacy_syntax): Python 2
print statements and PyTorch's pre-0.4 `async=True` keyword."""

from __future__ import annotations

import ast

import pytest

from bnlint.index import summarize_file
from bnlint.index.legacy_syntax import python3_reading

SCRIPT = """import sys

def report(step, loss, log):
    print 'step', step
    print >>log, "loss %.3f at %d" % \\
        (loss, step)
    print step,
    if step % 10 == 0: print 'checkpoint'; print
    print [step, loss]
    model.eval()
"""


def _calls_to_print(tree: ast.Module) -> list[tuple[int, int]]:
    return [
        (node.lineno, node.col_offset)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if node.func.id == "print"
    ]


def test_python3_rejects_the_sample() -> None:
    with pytest.raises(SyntaxError):
        ast.parse(SCRIPT)


def test_each_print_statement_becomes_a_call_on_its_own_line() -> None:
    tree = python3_reading(SCRIPT)
    assert tree is not None
    assert sorted(line for line, _ in _calls_to_print(tree)) == [4, 5, 7, 8, 8, 9]
    assert (8, 23) in _calls_to_print(tree)  # the body of a one-line `if`


def test_line_numbers_after_a_continued_print_are_unchanged() -> None:
    tree = python3_reading(SCRIPT)
    assert tree is not None
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "eval"]
    assert (call.lineno, call.col_offset) == (10, 4)


def test_items_keep_their_columns_when_a_space_follows_print() -> None:
    tree = python3_reading("print 'epoch', epoch\n")
    assert tree is not None
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [(a.lineno, a.col_offset) for a in call.args] == [(1, 6), (1, 15)]


def test_stream_of_print_chevron_is_an_argument() -> None:
    tree = python3_reading("print >>sys.stderr, 'done'\n")
    assert tree is not None
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert ast.unparse(call) == "print(sys.stderr, 'done')"


def test_print_calls_already_in_python3_spelling_are_left_alone() -> None:
    tree = python3_reading("print('a')\nprint 'b'\nprint ('c'), d\n")
    assert tree is not None
    assert ast.unparse(tree).splitlines() == ["print('a')", "print('b')", "(print('c'), d)"]


def test_async_keyword_argument_of_old_pytorch_is_read() -> None:
    source = "def step(x, y):\n    return x.cuda(), y.cuda(async=True)\n"
    with pytest.raises(SyntaxError):
        ast.parse(source)
    tree = python3_reading(source)
    assert tree is not None
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.keywords]
    assert (call.lineno, [k.arg for k in call.keywords]) == (2, ["async_"])


def test_async_functions_are_not_rewritten() -> None:
    assert python3_reading("async def f():\n    await g(x=1)\n") is None
    assert python3_reading("async def f(:\n    pass\n") is None


def test_python3_source_is_not_read_again() -> None:
    assert python3_reading("print('fine')\n") is None
    assert python3_reading("x = 1\n") is None


@pytest.mark.parametrize(
    "source",
    [
        "print 'a'\ndef broken(:\n    pass\n",
        "print 'a'\nexec 'x = 1'\n",
        "print 'a'\nname = `value`\n",
        "try:\n    print 'a'\nexcept IOError, error:\n    pass\n",
        "print 'a'\nmode = 0755\n",
    ],
    ids=["unrelated-error", "exec", "backticks", "except-comma", "octal"],
)
def test_anything_else_python2_stays_unparsable(source: str) -> None:
    assert python3_reading(source) is None


def test_summary_of_a_python2_script_has_its_functions_and_stays_unparsable() -> None:
    summary = summarize_file("train.py", "import torch\n" + SCRIPT)
    assert summary.unparsable  # its own rules still report BN000
    assert "report" in summary.functions


def test_summary_of_other_python2_syntax_is_empty() -> None:
    summary = summarize_file("train.py", "import torch\ndef f():\n    exec 'x'\n    print 1\n")
    assert summary.unparsable
    assert not summary.functions
