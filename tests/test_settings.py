"""bnlint.index.settings: momentum defaults set as configuration, and BN010 reading
them where a BatchNorm's momentum comes from `args`/`cfg`."""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path

from bnlint.index import ProjectIndex, summarize_file
from bnlint.index.settings import project_setting, setting_key, settings_of
from bnlint.index.summary import Positions
from tests.conftest import run_cli

CONFIG = """
import argparse
from yacs.config import CfgNode as CN

_C = CN()
_C.MODEL = CN()
_C.MODEL.BN_MOMENTUM = 0.9
_C.SOLVER = CN()
_C.SOLVER.LR = 0.9

parser = argparse.ArgumentParser()
parser.add_argument("--bn-momentum", type=float, default=0.99)
parser.add_argument("-m", "--ema", dest="ema_momentum", default=0.999)

class HParams:
    norm_momentum: float = 0.97

optimizer_settings = {"momentum": 0.9, "lr": 0.1}
"""


def test_momentum_named_defaults_are_collected_by_key() -> None:
    text = textwrap.dedent(CONFIG)
    settings = settings_of(ast.parse(text), Positions(text))
    assert {key: [n for n, _ in values] for key, values in settings.items()} == {
        "BN_MOMENTUM": [0.9],
        "bn_momentum": [0.99],
        "ema_momentum": [0.999],
        "norm_momentum": [0.97],
        "momentum": [0.9],
    }


def test_reads_name_a_key_but_a_plain_attribute_of_self_does_not() -> None:
    keys = [
        setting_key(ast.parse(code, mode="eval").body)
        for code in ("args.bn_momentum", "self.cfg.BN_MOMENTUM", "cfg['bn_momentum']", "self.m")
    ]
    assert keys == ["bn_momentum", "BN_MOMENTUM", "bn_momentum", None]


def test_a_key_set_to_two_numbers_is_unknown() -> None:
    files = {
        "/p/a.py": "import torch\nparser.add_argument('--bn_momentum', default=0.9)\n",
        "/p/b.py": "import torch\nDEFAULTS = {'bn_momentum': 0.1}\n",
    }
    index = ProjectIndex.from_summaries(
        "/p", {path: summarize_file(path, text) for path, text in files.items()}
    )
    assert project_setting(index, "bn_momentum") is None
    only_a = ProjectIndex.from_summaries(
        "/p", {"/p/a.py": summarize_file("/p/a.py", files["/p/a.py"])}
    )
    assert project_setting(only_a, "bn_momentum") == (0.9, "/p/a.py", [2, 45, 2, 48])


def test_batchnorm_reading_a_keras_style_config_default_is_reported(project: Path) -> None:
    (project / "config.py").write_text(textwrap.dedent(CONFIG))
    (project / "model.py").write_text(
        "import torch.nn as nn\nfrom config import _C as cfg\n\n"
        "def block(c):\n    return nn.BatchNorm2d(c, momentum=cfg.MODEL.BN_MOMENTUM)\n"
    )
    findings = json.loads(run_cli("check", "--select", "BN010", "--format", "json").output)
    assert [(f["filename"], f["location"]["row"]) for f in findings] == [("model.py", 5)]
    assert "config.py" in findings[0]["message"]


def test_schema_field_default_counts_and_test_files_do_not() -> None:
    files = {
        "/p/schema.py": (
            "import torch\nclass TabConfig:\n"
            "    bn_momentum: float = FloatRange(default=0.95, description='m_B')\n"
        ),
        "/p/tests/test_config.py": "import torch\nCASE = {'bn_momentum': 0.6}\n",
    }
    index = ProjectIndex.from_summaries(
        "/p", {path: summarize_file(path, text) for path, text in files.items()}
    )
    setting = project_setting(index, "bn_momentum")
    assert setting is not None and setting[:2] == (0.95, "/p/schema.py")
