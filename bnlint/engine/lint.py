"""One file's text → its findings: one parse, one visitor pass for all rules.

Positions are the expensive part of libcst metadata (as much again as the parse), so
they are resolved once per file and only when some rule reported something.
"""

from __future__ import annotations

import ast
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from bnlint.engine import noqa
from bnlint.engine.source import split_lines, unreadable
from bnlint.finding import Edit, Finding, Fix, Position, Severity
from bnlint.index import ProjectIndex
from bnlint.rule import NodeEdit, Report, Rule, RuleContext

INTERNAL_CODE = "BN999"
INTERNAL_NAME = "internal-error"


def lint_text(
    path: str,
    text: str,
    rules: Sequence[type[Rule]],
    index: ProjectIndex,
    options: Mapping[str, Any],
) -> list[Finding]:
    """Findings of `rules` on `text` (reported as `path`), with `noqa` applied."""
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as error:
        return [_syntax_error(path, text, error)]
    except RecursionError:
        return [unreadable(path, "the code is nested too deeply to parse")]

    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    context = RuleContext(path=path, source=text, module=module, index=index, options=options)
    wanted = sorted({name for rule in rules for name in rule.metadata})
    if wanted:
        import libcst.metadata as providers

        context.metadata = {name: wrapper.resolve(getattr(providers, name)) for name in wanted}

    instances = [rule(context) for rule in rules]
    dispatcher = _Dispatcher(instances)
    try:
        module.visit(dispatcher)
    except RecursionError:
        return [unreadable(path, "the code is nested too deeply to analyse")]

    findings = [_internal_error(path, rule, error) for rule, error in dispatcher.failures.items()]
    reports = [
        report for rule in instances if rule not in dispatcher.failures for report in rule.reports
    ]
    if reports:
        positions = wrapper.resolve(PositionProvider)
        by_code = {rule.code: rule for rule in rules}
        findings.extend(
            _finding(path, module, report, by_code[report.code], positions) for report in reports
        )
    names = {rule.name: rule.code for rule in rules}
    return noqa.filter_findings(findings, text, split_lines(text), names)


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


class _Dispatcher(cst.CSTVisitor):
    """Calls each rule's `visit_<Node>` / `leave_<Node>` methods; a rule that raises is
    switched off for the rest of the file and reported as BN999."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        super().__init__()
        self.visits: dict[str, list[tuple[Rule, Callable[[Any], Any]]]] = defaultdict(list)
        self.leaves: dict[str, list[tuple[Rule, Callable[[Any], Any]]]] = defaultdict(list)
        for rule in rules:
            for attribute in dir(type(rule)):
                if attribute.startswith("visit_"):
                    self.visits[attribute[6:]].append((rule, getattr(rule, attribute)))
                elif attribute.startswith("leave_"):
                    self.leaves[attribute[6:]].append((rule, getattr(rule, attribute)))
        self.failures: dict[Rule, BaseException] = {}

    def on_visit(self, node: cst.CSTNode) -> bool:
        handlers = self.visits.get(type(node).__name__)
        if handlers:
            self._call(handlers, node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        handlers = self.leaves.get(type(original_node).__name__)
        if handlers:
            self._call(handlers, original_node)

    def _call(self, handlers: list[tuple[Rule, Callable[[Any], Any]]], node: cst.CSTNode) -> None:
        for rule, handler in handlers:
            if rule in self.failures:
                continue
            try:
                handler(node)
            except RecursionError:
                raise
            except Exception as error:  # a rule's bug must not stop the run
                self.failures[rule] = error


def _finding(
    path: str,
    module: cst.Module,
    report: Report,
    rule: type[Rule],
    positions: Mapping[cst.CSTNode, Any],
) -> Finding:
    code_range = positions[report.node]
    fix = None
    if report.fix is not None:
        fix = Fix(
            applicability=report.fix.applicability,
            message=report.fix.message,
            edits=tuple(_edit(module, edit, positions) for edit in report.fix.edits),
        )
    return Finding(
        code=report.code,
        name=rule.name,
        severity=rule.severity,
        path=path,
        start=Position(code_range.start.line, code_range.start.column + 1),
        end=Position(code_range.end.line, code_range.end.column + 1),
        message=report.message,
        suggestion=report.suggestion,
        fix=fix,
    )


def _edit(module: cst.Module, edit: NodeEdit, positions: Mapping[cst.CSTNode, Any]) -> Edit:
    code_range = positions[edit.node]
    start = Position(code_range.start.line, code_range.start.column + 1)
    end = Position(code_range.end.line, code_range.end.column + 1)
    content = edit.content if isinstance(edit.content, str) else module.code_for_node(edit.content)
    if edit.where == "before":
        return Edit(start, start, content)
    if edit.where == "after":
        return Edit(end, end, content)
    return Edit(start, end, content)


def _internal_error(path: str, rule: Rule, error: BaseException) -> Finding:
    start = Position(1, 1)
    return Finding(
        code=INTERNAL_CODE,
        name=INTERNAL_NAME,
        severity=Severity.ERROR,
        path=path,
        start=start,
        end=start,
        message=(
            f"rule {rule.code} ({rule.name}) failed on this file: {type(error).__name__}: {error}"
        ),
        suggestion=(
            f"report this bnlint bug; meanwhile ignore {rule.code} for this file "
            "with `per-file-ignores`"
        ),
    )
