"""The cross-file fixture project (fixtures/project/): models in `netlib/models.py`,
helpers in `netlib/engine.py`, the training script in `train.py`. All five of
BN001-BN005 are found there, only on the lines marked `# expect:`, whether the whole
project is checked or only the training script is passed (as pre-commit does)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.test_fixtures import expected_findings

PROJECT = FIXTURES / "project"


def _expected(paths: list[Path], root: Path = PROJECT) -> set[tuple[str, int, str]]:
    return {
        (path.relative_to(root).as_posix(), line, code)
        for path in paths
        for line, code in expected_findings(path.read_text(encoding="utf-8"))
    }


def _check(project: Path, *paths: str) -> set[tuple[str, int, str]]:
    """Findings of the real CLI (default rules), run in `project` as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "bnlint", "check", "--no-cache", "--format", "json", *paths],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return {
        (Path(f["filename"]).as_posix(), f["location"]["row"], f["code"])
        for f in json.loads(result.stdout)
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A copy, so a run cannot leave a cache in the repository.
    copy = tmp_path_factory.mktemp("fixture") / "project"
    shutil.copytree(PROJECT, copy)
    return copy


def test_whole_project_yields_exactly_the_marked_findings(project: Path) -> None:
    found = _check(project)
    assert found == _expected(sorted(PROJECT.rglob("*.py")))
    assert {code for _, _, code in found} == {"BN001", "BN002", "BN003", "BN004", "BN005"}


def test_training_script_alone_still_sees_the_other_modules(project: Path) -> None:
    # pre-commit passes only the changed file: the models and helpers it imports are
    # still indexed, so the script's findings are the same as in a whole-project run.
    assert _check(project, "train.py") == _expected([PROJECT / "train.py"])
    assert {code for _, _, code in _check(project, "train.py")} == {"BN002", "BN003", "BN005"}


def test_models_module_alone_yields_its_marked_findings(project: Path) -> None:
    models = PROJECT / "netlib" / "models.py"
    assert _check(project, "netlib/models.py") == _expected([models])


@pytest.fixture()
def unmarked_project(project: Path, tmp_path: Path) -> Path:
    """The same scripts as a downloaded folder: no pyproject.toml, no .git."""
    copy = tmp_path / "scripts"
    shutil.copytree(project, copy)
    (copy / "pyproject.toml").unlink()
    return copy


def test_script_in_an_unmarked_folder_still_sees_its_sibling_modules(
    unmarked_project: Path,
) -> None:
    # The working directory stands in for the missing project root.
    assert _check(unmarked_project, "train.py") == _expected([PROJECT / "train.py"])


def test_unmarked_folder_above_the_limit_indexes_only_the_checked_files(
    unmarked_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bnlint.config import load_settings
    from bnlint.engine import project as engine_project
    from bnlint.engine.discovery import SourcePath
    from bnlint.engine.source import read_file

    monkeypatch.chdir(unmarked_project)
    settings = load_settings(unmarked_project)
    script = SourcePath(path=unmarked_project / "train.py", display="train.py")
    checked = [(script, read_file(script.path, script.display))]
    walked = engine_project._project_sources(settings, unmarked_project, checked)  # type: ignore[arg-type]
    assert len(walked) == len(list(unmarked_project.rglob("*.py")))
    monkeypatch.setattr(engine_project, "UNMARKED_PROJECT_LIMIT", len(walked) - 1)
    assert engine_project._project_sources(settings, unmarked_project, checked) == []  # type: ignore[arg-type]


# fixtures/project-python2/: a training script still written for Python 2 (print
# statements) whose options file declares `--batch-size` with default 1.
PYTHON2_PROJECT = FIXTURES / "project-python2"


@pytest.fixture()
def python2_project(tmp_path: Path) -> Path:
    copy = tmp_path / "project-python2"
    shutil.copytree(PYTHON2_PROJECT, copy)
    return copy


def test_python2_training_script_still_feeds_the_index(python2_project: Path) -> None:
    # The script itself is BN000 (Python 3 cannot read it), but the index reads its
    # print statements as calls, so the option's default is traced to its loop.
    expected = _expected(sorted(PYTHON2_PROJECT.rglob("*.py")), PYTHON2_PROJECT)
    assert {code for _, _, code in expected} == {"BN000", "BN003"}
    assert _check(python2_project) == expected


def test_python2_script_found_when_only_the_options_file_is_checked(
    python2_project: Path,
) -> None:
    options = PYTHON2_PROJECT / "segkit" / "options.py"
    assert _check(python2_project, "segkit/options.py") == _expected([options], PYTHON2_PROJECT)


def test_python2_script_with_other_python2_syntax_stays_unknown(python2_project: Path) -> None:
    # An `except E, e` clause is not a print statement: the script is not read at
    # all, so nothing is said about the batch size it would have trained with.
    script = python2_project / "adapt.py"
    text = script.read_text(encoding="utf-8")
    script.write_text(
        text.replace(
            '    log = open(opts.log, "a")\n',
            '    try:\n        log = open(opts.log, "a")\n    except IOError, error:\n'
            "        log = sys.stderr\n",
        ),
        encoding="utf-8",
    )
    assert "except IOError, error" in script.read_text(encoding="utf-8")
    assert {code for _, _, code in _check(python2_project)} == {"BN000"}
