"""One file's text → its findings: one parse, one visitor pass for all rules.

Positions are the expensive part of libcst metadata (as much again as the parse), so
they are resolved once per file and only when some rule reported something.
"""

from __future__ import annotations

import ast
import dataclasses
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bnlint.engine import noqa
from bnlint.engine.source import split_lines, unreadable
from bnlint.finding import INTERNAL_ERROR, Edit, Finding, Fix, Position, file_problem
from bnlint.index.summary import Positions
from bnlint.lazy import cst
from bnlint.rule import NodeEdit, Report, Rule, RuleContext

if TYPE_CHECKING:
    from bnlint.index import ProjectIndex


class _Unparsable(Exception):
    """The text does not parse; carries the BN000 finding that says why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def lint_text(
    path: str,
    text: str,
    rules: Sequence[type[Rule]],
    index: ProjectIndex,
    options: Mapping[str, Any],
) -> list[Finding]:
    """Findings of `rules` on `text` (reported as `path`), with `noqa` applied.

    Rules that decide from the project index (`check_module`) run first, without a
    tree; the file is parsed only when a rule walks the tree or one of them reports."""

    def parse() -> cst.Module:
        try:
            return cst.parse_module(text)
        except cst.ParserSyntaxError as error:
            raise _Unparsable(_syntax_error(path, text, error)) from error
        except RecursionError as error:
            raise _Unparsable(unreadable(path, "the code is nested too deeply to parse")) from error

    def parse_ast() -> ast.Module:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarnings are not ours to print
                return ast.parse(text, path)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            # libcst names the problem as BN000 (or, when only `ast` rejects the code,
            # the ast rules are the ones that cannot run: report that as BN000 too).
            parse()
            raise _Unparsable(unreadable(path, "Python's parser rejects this code")) from None

    context = RuleContext(path, text, index, options, parse, parse_ast)
    instances = [rule(context) for rule in rules]
    try:
        failures = _run_module_checks(instances)
        walkers = [rule for rule in instances if _walks(type(rule)) and rule not in failures]
        ast_walkers = [rule for rule in walkers if rule.syntax == "ast"]
        cst_walkers = [rule for rule in walkers if rule.syntax == "libcst"]
        summary = index.summaries.get(path)
        if cst_walkers or (summary is not None and summary.unparsable):
            context.module  # noqa: B018  (parse now: a walk needs it, or BN000 is due)
        ast_dispatcher = _Dispatcher(ast_walkers, _ast_children)
        if ast_walkers:
            ast_dispatcher.walk(context.tree)
        cst_dispatcher = _Dispatcher(cst_walkers, _cst_children)
        if cst_walkers:
            module = context.module
            wanted = sorted({name for rule in cst_walkers for name in rule.metadata})
            if wanted:
                import libcst.metadata as providers

                wrapper = providers.MetadataWrapper(module, unsafe_skip_copy=True)
                context.metadata = {
                    name: wrapper.resolve(getattr(providers, name)) for name in wanted
                }
            cst_dispatcher.walk(module)
    except _Unparsable as unparsable:
        return [unparsable.finding]
    except RecursionError:
        return [unreadable(path, "the code is nested too deeply to analyse")]

    failures.update(ast_dispatcher.failures)
    failures.update(cst_dispatcher.failures)
    findings = [_internal_error(path, rule, error) for rule, error in failures.items()]
    reports = [report for rule in instances if rule not in failures for report in rule.reports]
    if reports:
        by_code = {rule.code: rule for rule in rules}
        place = _Placer(text, context)
        findings.extend(place.finding(path, report, by_code[report.code]) for report in reports)
    names = {rule.name: rule.code for rule in rules}
    return noqa.filter_findings(findings, text, split_lines(text), names)


def _walks(rule: type[Rule]) -> bool:
    return any(name.startswith(("visit_", "leave_")) for name in dir(rule))


def _run_module_checks(rules: Sequence[Rule]) -> dict[Rule, BaseException]:
    """Run each rule's `check_module`; a rule that raises is reported as BN999 (an
    unparsable file is not the rule's fault and propagates)."""
    failures: dict[Rule, BaseException] = {}
    for rule in rules:
        check = getattr(rule, "check_module", None)
        if check is None:
            continue
        try:
            check()
        except (_Unparsable, RecursionError):
            raise
        except Exception as error:  # a rule's bug must not stop the run
            failures[rule] = error
    return failures


def _syntax_error(path: str, text: str, error: cst.ParserSyntaxError) -> Finding:
    """Python's own compiler names the cause and place better than libcst's parser,
    which reports where it gave up; ask it (only on failure, so it costs nothing)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are not ours to print
            compile(text, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as python_error:
        return unreadable(
            path,
            f"syntax error: {python_error.msg}",
            python_error.lineno or 1,
            python_error.offset or 1,
        )
    except (ValueError, RecursionError, MemoryError):
        pass
    return unreadable(
        path,
        f"libcst cannot parse this code ({error.message.strip()})",
        error.raw_line,
        error.raw_column + 1,
    )


# Tokens and whitespace that no rule needs to see: skipping them halves the walk.
_TRIVIA = frozenset(
    {
        "SimpleWhitespace",
        "ParenthesizedWhitespace",
        "TrailingWhitespace",
        "EmptyLine",
        "Newline",
        "Comment",
        "LeftParen",
        "RightParen",
        "LeftSquareBracket",
        "RightSquareBracket",
        "LeftCurlyBrace",
        "RightCurlyBrace",
        "Comma",
        "Semicolon",
        "Colon",
        "Dot",
        "AssignEqual",
        "ImportStar",
    }
)


class _Dispatcher:
    """Walks the tree once and calls each rule's `visit_<Node>` / `leave_<Node>` methods;
    a rule that raises is switched off for the rest of the file and reported as BN999.

    libcst's own `module.visit()` rebuilds every node on the way back up (it is the
    transformer machinery) and costs twice the parse; this read-only walk follows the
    nodes' fields instead (in source order: decorators first), iteratively, so deep
    nesting cannot exhaust the stack."""

    def __init__(
        self, rules: Sequence[Rule], children: Callable[[Any, frozenset[str]], list[Any]]
    ) -> None:
        self.children = children
        self.visits: dict[str, list[tuple[Rule, Callable[[Any], Any]]]] = defaultdict(list)
        self.leaves: dict[str, list[tuple[Rule, Callable[[Any], Any]]]] = defaultdict(list)
        for rule in rules:
            for attribute in dir(type(rule)):
                if attribute.startswith("visit_"):
                    self.visits[attribute[6:]].append((rule, getattr(rule, attribute)))
                elif attribute.startswith("leave_"):
                    self.leaves[attribute[6:]].append((rule, getattr(rule, attribute)))
        self.skipped = frozenset(_TRIVIA - set(self.visits) - set(self.leaves))
        self.failures: dict[Rule, BaseException] = {}

    def walk(self, module: Any) -> None:
        stack: list[tuple[Any, bool]] = [(module, False)]
        visits, leaves, skipped, children_of = self.visits, self.leaves, self.skipped, self.children
        while stack:
            node, leaving = stack.pop()
            name = type(node).__name__
            if leaving:
                self._call(leaves[name], node)
                continue
            handlers = visits.get(name)
            if handlers:
                self._call(handlers, node)
            if name in leaves:
                stack.append((node, True))
            children = children_of(node, skipped)
            children.reverse()
            stack.extend([(child, False) for child in children])

    def _call(self, handlers: list[tuple[Rule, Callable[[Any], Any]]], node: Any) -> None:
        for rule, handler in handlers:
            if rule in self.failures:
                continue
            try:
                handler(node)
            except RecursionError:
                raise
            except Exception as error:  # a rule's bug must not stop the run
                self.failures[rule] = error


_FIELDS: dict[type, tuple[str, ...]] = {}
_IS_NODE: dict[type, bool] = {}


def _child_fields(kind: type) -> tuple[str, ...]:
    names = tuple(
        f.name
        for f in dataclasses.fields(kind)
        if not f.name.startswith("whitespace") and f.name not in ("lpar", "rpar")
    )
    if "decorators" in names:
        names = ("decorators", *(n for n in names if n != "decorators"))
    _FIELDS[kind] = names
    return names


def _is_node(kind: type) -> bool:
    # isinstance against the CSTNode ABC is slow; the answer per type never changes.
    answer = _IS_NODE.get(kind)
    if answer is None:
        answer = _IS_NODE[kind] = issubclass(kind, cst.CSTNode)
    return answer


# Fields no rule walks into: `ctx` (Load/Store/Del) and operators are leaves on half of
# all nodes; skipping them makes the walk about a third cheaper.
_AST_LEAF_FIELDS = frozenset({"ctx", "op", "ops", "type_ignores"})
_AST_FIELDS: dict[type, tuple[str, ...]] = {}


def _ast_children(node: ast.AST, skipped: frozenset[str]) -> list[ast.AST]:
    kind = type(node)
    names = _AST_FIELDS.get(kind)
    if names is None:
        names = _AST_FIELDS[kind] = tuple(f for f in kind._fields if f not in _AST_LEAF_FIELDS)
    children: list[ast.AST] = []
    for name in names:
        value = getattr(node, name, None)
        if type(value) is list:
            children.extend(item for item in value if isinstance(item, ast.AST))
        elif isinstance(value, ast.AST):
            children.append(value)
    return children


def _cst_children(node: cst.CSTNode, skipped: frozenset[str]) -> list[cst.CSTNode]:
    kind = type(node)
    names = _FIELDS.get(kind) or _child_fields(kind)
    children: list[cst.CSTNode] = []
    for name in names:
        value = getattr(node, name)
        value_kind = type(value)
        if value_kind is tuple or value_kind is list:
            for item in value:
                item_kind = type(item)
                if _is_node(item_kind) and item_kind.__name__ not in skipped:
                    children.append(item)
        elif _is_node(value_kind) and value_kind.__name__ not in skipped:
            children.append(value)
    return children


class _Placer:
    """Turns reports into findings: positions of `ast` nodes come from the nodes
    themselves (columns converted from UTF-8 bytes to code points), positions of libcst
    nodes from libcst's metadata, resolved once and only if a libcst node was reported."""

    def __init__(self, text: str, context: RuleContext) -> None:
        self.context = context
        self.ast_positions = Positions(text)
        self._cst_positions: Mapping[cst.CSTNode, Any] | None = None

    def span(self, node: cst.CSTNode | ast.AST) -> tuple[Position, Position]:
        if isinstance(node, ast.AST):
            line, column, end_line, end_column = self.ast_positions.of(node)
            return Position(line, column + 1), Position(end_line, end_column + 1)
        if self._cst_positions is None:
            from libcst.metadata import MetadataWrapper, PositionProvider

            wrapper = MetadataWrapper(self.context.module, unsafe_skip_copy=True)
            self._cst_positions = wrapper.resolve(PositionProvider)
        code_range = self._cst_positions[node]
        return (
            Position(code_range.start.line, code_range.start.column + 1),
            Position(code_range.end.line, code_range.end.column + 1),
        )

    def finding(self, path: str, report: Report, rule: type[Rule]) -> Finding:
        start, end = self.span(report.node)
        fix = None
        if report.fix is not None:
            fix = Fix(
                applicability=report.fix.applicability,
                message=report.fix.message,
                edits=tuple(self.edit(edit) for edit in report.fix.edits),
            )
        return Finding(
            code=report.code,
            name=rule.name,
            severity=report.severity or rule.severity,
            path=path,
            start=start,
            end=end,
            message=report.message,
            suggestion=report.suggestion,
            fix=fix,
        )

    def edit(self, edit: NodeEdit) -> Edit:
        start, end = self.span(edit.node)
        content = edit.content
        if not isinstance(content, str):
            content = self.context.module.code_for_node(content)
        if edit.where == "before":
            return Edit(start, start, content)
        if edit.where == "after":
            return Edit(end, end, content)
        return Edit(start, end, content)


def _internal_error(path: str, rule: Rule, error: BaseException) -> Finding:
    return file_problem(
        INTERNAL_ERROR,
        path,
        f"rule {rule.code} ({rule.name}) failed on this file: {type(error).__name__}: {error}",
        f"report this bnlint bug; meanwhile ignore {rule.code} for this file "
        "with `per-file-ignores`",
    )
