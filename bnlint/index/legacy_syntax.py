"""A Python 3 reading of old training code that Python 3 rejects only for two
mechanical spellings, for the project index alone: the Python 2 print statement and
PyTorch's pre-0.4 `async=True` keyword (`x.cuda(async=True)`; `async` is a reserved
word since Python 3.7).

Research code from those years is still trained as it was released: the training
script says `print 'taking snapshot ...'` or `target.cuda(async=True)` and nothing else
stops Python 3's parser. Left unparsable, such a script is a hole in the index: the
loop that trains a BatchNorm model on its options' batch size is lost, and so is every
finding in the other files that depends on it. So the index reads `print x, y` as
`print(x, y)`, `print >>f, x` as `print( f, x)`, a bare `print` as `print()` and
`async=` as `async_=`, each on the same lines (and, where a space or the `>>` can be
overwritten, the same columns), so positions in the summary are positions in the file.

Anything else (`exec` statements, backticks, `except E, e`, `0777`, `ur''`) is not
rewritten: the reading then fails to parse and the file stays unknown. The file's own
rules are unaffected: they parse the real text and report BN000.
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings

# Tokens after which a statement starts.
_STATEMENT_START = frozenset({tokenize.INDENT, tokenize.DEDENT})
# What follows `print` when it is a name in an expression (`print = log`, `print.x`,
# `f(print)`) or already a call (`print('x')`, `print ('x'), y`), not a statement.
_NOT_PRINTED = frozenset({"(", "=", ".", ",", ")", "]", "}", ":", "+=", "-="})


def python3_reading(text: str) -> ast.Module | None:
    """The tree of `text` with its print statements read as calls, when that parses;
    None when `text` has no print statement or anything else stops the parser."""
    if "print" not in text and "async" not in text:
        return None
    rewritten = _with_print_calls(text)
    if rewritten is None or rewritten == text:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(rewritten)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _with_print_calls(text: str) -> str | None:
    """`text` with each print statement turned into a call on the same lines."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    lines = text.splitlines(keepends=True)
    # Edits as (row, col, old length, new text), applied from the end of the file.
    edits: list[tuple[int, int, int, str]] = []
    depth = 0
    start_ok = True  # the next significant token starts a statement
    open_print: tuple[int, int] | None = None  # end of the last token of a print's items
    for position, token in enumerate(tokens):
        kind, string = token.type, token.string
        if kind in (tokenize.COMMENT, tokenize.NL):
            continue  # a comment, a blank line or a line break inside brackets
        if kind == tokenize.ERRORTOKEN and not string.isspace():
            return None  # a backtick, `$`: not a print statement's problem
        ends_statement = kind in (tokenize.NEWLINE, tokenize.ENDMARKER) or (
            kind == tokenize.OP and string == ";" and depth == 0
        )
        if ends_statement:
            if open_print is not None:
                edits.append((*open_print, 0, ")"))
                open_print = None
            start_ok = True
            continue
        if kind in _STATEMENT_START:
            start_ok = True
            continue
        if kind == tokenize.OP:
            depth += string in "([{"
            depth -= string in ")]}"
        if kind == tokenize.NAME and string == "async" and depth > 0:
            follower = _next_significant(tokens, position)
            if follower is not None and follower.string == "=":
                # `x.cuda(async=True)`: PyTorch's keyword before 0.4, a reserved word
                # since Python 3.7.
                edits.append((*token.start, len(string), "async_"))
        if start_ok and kind == tokenize.NAME and string == "print":
            follower = _next_significant(tokens, position)
            if (
                follower is None
                or follower.type in (tokenize.NEWLINE, tokenize.ENDMARKER)
                or follower.string == ";"
            ):
                edits.append((*token.end, 0, "()"))  # a bare `print`: an empty line
            elif follower.string not in _NOT_PRINTED:
                edits.append(_opening(lines, token, follower))
                if follower.string == ">>":
                    # `print >>f, x`: the stream becomes the first item.
                    edits.append((*follower.start, 2, "  "))
                open_print = follower.end
            start_ok = False
            continue
        # `if x: print y` and `else: print y`: a colon at depth 0 opens a one-line body.
        start_ok = kind == tokenize.OP and string == ":" and depth == 0
        if open_print is not None:
            open_print = token.end
    return _apply(lines, edits)


def _next_significant(tokens: list[tokenize.TokenInfo], position: int) -> tokenize.TokenInfo | None:
    for following in range(position + 1, len(tokens)):  # no slice: prints are many
        if tokens[following].type not in (tokenize.COMMENT, tokenize.NL):
            return tokens[following]
    return None


def _opening(
    lines: list[str], token: tokenize.TokenInfo, follower: tokenize.TokenInfo
) -> tuple[int, int, int, str]:
    """The `(` after `print`: over the space that follows it when there is one (so the
    items keep their columns), inserted otherwise."""
    row, col = token.end
    if follower.start[0] == row and follower.start[1] > col and lines[row - 1][col] in " \t":
        return row, col, 1, "("
    return row, col, 0, "("


def _apply(lines: list[str], edits: list[tuple[int, int, int, str]]) -> str:
    for row, col, length, new in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[col + length :]
    return "".join(lines)
