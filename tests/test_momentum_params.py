"""bnlint.index.momentum_params: constructor keywords that become a BatchNorm's
momentum, followed across files; and BN010 reporting a default that reaches one."""

from __future__ import annotations

import textwrap

from bnlint.config import RULE_OPTIONS
from bnlint.engine.lint import lint_text
from bnlint.index import ProjectIndex, summarize_file
from bnlint.index.momentum_params import is_momentum_parameter
from bnlint.registry import all_rules

NORM = """
import torch.nn as nn

class GhostNorm(nn.Module):
    def __init__(self, features, momentum=0.1, chunk=64):
        super().__init__()
        self.momentum = momentum
        self.bn = nn.BatchNorm1d(features, momentum=self.momentum)
"""
BLOCK = """
import torch.nn as nn
from pkg.norm import GhostNorm

class Block(nn.Module):
    def __init__(self, width, bn_momentum=0.98, dropout_momentum=0.5):
        super().__init__()
        self.norm = GhostNorm(width, momentum=bn_momentum)
        self.fc = nn.Linear(width, width)
"""


def _index() -> ProjectIndex:
    files = {
        "/project/pkg/norm.py": NORM,
        "/project/pkg/block.py": BLOCK,
        "/project/pkg/__init__.py": "",
    }
    summaries = {path: summarize_file(path, textwrap.dedent(text)) for path, text in files.items()}
    return ProjectIndex.from_summaries("/project", summaries)


def test_keyword_reaching_a_batchnorm_through_an_attribute_is_a_momentum_parameter() -> None:
    index = _index()
    assert is_momentum_parameter(index, "/project/pkg/block.py", "pkg.norm.GhostNorm", "momentum")
    assert not is_momentum_parameter(index, "/project/pkg/block.py", "pkg.norm.GhostNorm", "chunk")


def test_forwarded_keyword_is_followed_into_the_other_file() -> None:
    index = _index()
    assert is_momentum_parameter(index, "/project/pkg/norm.py", "pkg.block.Block", "bn_momentum")
    assert not is_momentum_parameter(
        index, "/project/pkg/norm.py", "pkg.block.Block", "dropout_momentum"
    )


def test_default_passed_to_another_files_norm_is_reported() -> None:
    index = _index()
    source = textwrap.dedent(BLOCK)
    rule = all_rules()["BN010"]
    findings = lint_text("/project/pkg/block.py", source, [rule], index, dict(RULE_OPTIONS))
    assert [(f.start.line, f.code) for f in findings] == [(6, "BN010")]
    assert "GhostNorm" in findings[0].message
