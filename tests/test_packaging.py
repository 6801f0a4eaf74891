"""What `pip install bnlint` installs: rules under `bnlint.rules` (no top-level `rules`
package in site-packages), the JSON schema, the entry points, and no torch dependency."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (built,) = Path(out).glob("bnlint-*.whl")
    return zipfile.ZipFile(built)


@pytest.mark.slow
def test_rules_install_under_the_bnlint_namespace_only(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert tops == {"bnlint", next(t for t in tops if t.endswith(".dist-info"))}
    assert "bnlint/rules/bn007_mode_method_not_called.py" in wheel.namelist()
    assert "bnlint/report/findings.schema.json" in wheel.namelist()


@pytest.mark.slow
def test_static_install_requires_no_torch(wheel: zipfile.ZipFile) -> None:
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [
        line
        for line in wheel.read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert requires and not any("torch" in line for line in requires), requires


@pytest.mark.slow
def test_entry_points_are_declared(wheel: zipfile.ZipFile) -> None:
    entry_points = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    text = wheel.read(entry_points).decode()
    assert "bnlint = bnlint.cli:main" in text
    assert "bnlint = bnlint.pytest_plugin" in text
