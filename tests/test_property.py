"""Generated programs through every rule: the engine never crashes and every finding
is well formed. hypothesmith builds syntactically valid Python from the grammar
(`from_grammar`) and from libcst's node types (`from_node`)."""

from __future__ import annotations

import hypothesmith
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnlint.engine.run import static_rules
from bnlint.finding import Finding
from tests.conftest import lint

ALL_STATIC = sorted(static_rules())
# A few lines that wake every rule up, prepended to the generated code.
PRELUDE = "import torch\nfrom torch import nn\nmodel.eval\n"
PROGRAMS = st.one_of(hypothesmith.from_grammar(), hypothesmith.from_node())


def _well_formed(finding: Finding, source: str) -> None:
    assert finding.code.startswith("BN") and finding.suggestion
    if finding.code == "BN000":
        return
    assert finding.code != "BN999", finding.message
    lines = source.count("\n") + 1
    assert 1 <= finding.start.line <= finding.end.line <= lines
    assert (finding.start.line, finding.start.column) <= (finding.end.line, finding.end.column)


@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # hypothesmith compiles what it makes
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(PROGRAMS)
def test_generated_programs_never_crash_any_rule(program: str) -> None:
    for source in (program, PRELUDE + program):
        for finding in lint(source, ALL_STATIC):
            _well_formed(finding, source)
