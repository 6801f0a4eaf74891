"""The contract between a rule file and the engines.

A rule is a plain class, not a libcst visitor: the engine dispatches `visit_<Node>` /
`leave_<Node>` methods itself, so importing every rule to read its code, name and
trigger words does not import libcst (0.4 s on this machine). Rules that need libcst
at run time use `cst` from this module, a lazily loaded `libcst`: it is imported on
first attribute access, which only happens once a file has been parsed.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from bnlint.finding import Applicability, Severity
from bnlint.lazy import cst

if TYPE_CHECKING:
    from bnlint.events import Event, Site
    from bnlint.index import ProjectIndex

__all__ = [
    "Invalid",
    "NodeEdit",
    "PendingFix",
    "Report",
    "Rule",
    "RuleContext",
    "RuntimeReport",
    "cst",
]

Autofix = Literal["safe", "unsafe", "none"]
Syntax = Literal["libcst", "ast"]


@dataclass(frozen=True)
class NodeEdit:
    """An edit anchored on a node; the engine turns it into a text `Edit` once it knows
    where the node is. `content` is text, or a libcst node rendered with the module's
    style (rules that walk the `ast` give text)."""

    node: cst.CSTNode | ast.AST
    where: Literal["replace", "before", "after"]
    content: str | cst.CSTNode


@dataclass(frozen=True)
class PendingFix:
    applicability: Applicability
    message: str
    edits: tuple[NodeEdit, ...]


@dataclass(frozen=True)
class Report:
    """What a rule reported, before positions are known."""

    code: str
    node: cst.CSTNode | ast.AST
    message: str
    suggestion: str
    fix: PendingFix | None
    # Overrides the rule's severity for this report (a variant RULES.md rates higher).
    severity: Severity | None = None


@dataclass(frozen=True)
class RuntimeReport:
    """What a rule's runtime check reported about one tracer event.

    `at` says where the finding points: "call" (the user line that called the model or
    made the call the event stands for), "construction" (where the module was built) or
    "site" (the explicit `site`). Reports with the same code, `subject` (usually the
    module's qualified name) and place count as one finding with a count; `severity`
    overrides the rule's default (BN003: N == 1 is a warning, one value an error)."""

    message: str
    suggestion: str
    subject: str = ""
    at: Literal["call", "construction", "site"] = "call"
    site: Site | None = None
    severity: Severity | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invalid:
    """An inline example that must be flagged; `fixed` is the source after the fix."""

    source: str
    fixed: str | None = None


class RuleContext:
    """What a rule may read about the file under analysis.

    `module` (the libcst tree) and `tree` (the standard library's `ast`) are parsed on
    first access: a rule that decides from the project index alone (`check_module`) and
    finds nothing never costs a parse."""

    def __init__(
        self,
        path: str,
        source: str,
        index: ProjectIndex,
        options: Mapping[str, Any],
        parse: Callable[[], cst.Module],
        parse_ast: Callable[[], ast.Module] | None = None,
    ) -> None:
        self.path = path
        self.source = source
        self.index = index
        self.options = options
        self.metadata: Mapping[str, Mapping[cst.CSTNode, Any]] = {}
        self._parse = parse
        self._parse_ast = parse_ast or (lambda: ast.parse(source))
        self._module: cst.Module | None = None
        self._tree: ast.Module | None = None
        self._aliases: Mapping[str, str] | None = None

    @property
    def module(self) -> cst.Module:
        if self._module is None:
            self._module = self._parse()
        return self._module

    @property
    def tree(self) -> ast.Module:
        if self._tree is None:
            self._tree = self._parse_ast()
        return self._tree

    @property
    def aliases(self) -> Mapping[str, str]:
        """The file's module-level imports, local name → dotted path (see
        `bnlint.index.ast_names.import_aliases`), from `tree`, computed once per file."""
        if self._aliases is None:
            from bnlint.index.ast_names import import_aliases

            self._aliases = import_aliases(self.tree)
        return self._aliases

    @property
    def parsed(self) -> bool:
        return self._module is not None

    def get_metadata(self, provider: str, node: cst.CSTNode, default: Any = None) -> Any:
        return self.metadata.get(provider, {}).get(node, default)


class Rule:
    """Base class of every bnlint rule. Subclasses declare the class attributes below
    and implement `visit_<Node>` / `leave_<Node>` methods (node class names of the tree
    named by `syntax`), or `check_module`."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]
    default_enabled: ClassVar[bool] = True
    # Substrings of which a file must contain at least one for the rule to run on it.
    # They keep libcst away from files that cannot hold the misuse.
    triggers: ClassVar[tuple[str, ...]] = ()
    # Optionally, a regular expression the text must also match (searched only when a
    # trigger word is present): a sharper pre-filter for rules whose misuse has a
    # recognisable shape on one line, such as BN007's bare `.eval` at the end of a line.
    trigger_pattern: ClassVar[str | None] = None
    # Options whose value (when set) can make any file relevant, so the trigger
    # pre-filter is skipped: BN002's `eval-function-names` adds names no trigger knows.
    options_widening_triggers: ClassVar[tuple[str, ...]] = ()
    # The tree the `visit_*`/`leave_*` methods walk. "ast" (the standard library's) parses
    # about 6x faster than libcst and is the choice for a rule whose fixes are plain text
    # replacements of a node; "libcst" keeps comments and formatting, for fixes that
    # re-render code.
    syntax: ClassVar[Syntax] = "libcst"
    # libcst metadata providers by name (e.g. "ParentNodeProvider"); positions are
    # always resolved by the engine, and only for reported nodes.
    metadata: ClassVar[tuple[str, ...]] = ()
    # Whether the rule reads `context.index` (the project-wide model index). The engine
    # builds the index, one summary per project file, only when an enabled rule does.
    needs_index: ClassVar[bool] = False
    # The autofix the rule offers where the fix is mechanical (RULES.md's column):
    # "safe" is applied by `--fix`, "unsafe" only with `--unsafe-fixes`.
    autofix: ClassVar[Autofix] = "none"
    # Engines other than the static one that know this code (documentation only).
    engines: ClassVar[tuple[str, ...]] = ("static",)
    VALID: ClassVar[tuple[str, ...]] = ()
    INVALID: ClassVar[tuple[Invalid, ...]] = ()

    def __init__(self, context: RuleContext) -> None:
        self.context = context
        self.reports: list[Report] = []

    @property
    def aliases(self) -> Mapping[str, str]:
        """The file's import aliases (`RuleContext.aliases`), for resolving callees."""
        return self.context.aliases

    # Rules that decide from the project index (its ast summaries) implement
    # `check_module(self) -> None` instead of visit methods: it runs once per file
    # without a tree walk, and `self.context.module` is parsed only if it is touched,
    # which a rule does only to locate the node of a finding it reports.

    @classmethod
    def documentation(cls) -> str:
        """The rule's documentation: its module docstring (what it does, why it is bad,
        example, use instead, fix safety)."""
        module = sys.modules[cls.__module__]
        return (module.__doc__ or "").strip()

    @classmethod
    def summary(cls) -> str:
        """The first line of the documentation."""
        return cls.documentation().splitlines()[0] if cls.documentation() else cls.name

    # Runtime engine: the event types (`bnlint.events`) the runtime check reads.
    # The tracer calls `check_runtime` only for those, so a rule with none costs nothing.
    runtime_events: ClassVar[tuple[type, ...]] = ()

    @classmethod
    def check_runtime(cls, event: Event, memory: dict[str, Any]) -> Iterable[RuntimeReport]:
        """The runtime check: read one tracer event and yield what is wrong with it.

        Called by the tracer, inside the traced program, for each event whose type is in
        `runtime_events`. It must be cheap (it runs on every BatchNorm forward) and must
        not touch torch: events are plain data. `memory` is this rule's own scratch dict
        for one trace, for checks that need history (BN006: which BNs trained earlier).
        A BatchNorm call that repeats the module's previous call exactly (same flags,
        shapes, dtypes, producer, mode sites) is not delivered again: its findings are
        counted again instead. So a check of `BatchNormCall` must depend only on the
        event, or update `memory` idempotently per module (see `bnlint.events`).
        """
        return ()

    def report(
        self,
        node: cst.CSTNode | ast.AST,
        message: str,
        suggestion: str,
        fix: PendingFix | None = None,
        severity: Severity | None = None,
    ) -> None:
        self.reports.append(Report(self.code, node, message, suggestion, fix, severity))
