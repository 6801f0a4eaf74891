"""The pre-commit hooks run by the real pre-commit, in a temporary git repository,
against a copy of this repository's working tree committed as the hook repository.

pre-commit clones the hook repository (a local path: no network) and builds the hook
environment once per session with `pip install .` from the package registry; nothing
else is fetched (virtualenv's periodic wheel update is off).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pre_commit")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent

BAD = """\
import torch


def validate(model, loader):
    model.eval
    with torch.no_grad():
        return [model(images) for images, _ in loader]
"""

GOOD = BAD.replace("model.eval\n", "model.eval()\n")


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _git(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = _run(["git", *args], cwd, env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="session")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("pre-commit-home")
    gitconfig = home / "gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = bnlint tests\n\temail = tests@bnlint.invalid\n"
        "[commit]\n\tgpgsign = false\n[init]\n\tdefaultBranch = main\n"
    )
    env = dict(os.environ)
    env.update(
        PRE_COMMIT_HOME=str(home / "cache"),
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        VIRTUALENV_NO_PERIODIC_UPDATE="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PRE_COMMIT_COLOR="never",
        NO_COLOR="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="session")
def hook_repository(
    tmp_path_factory: pytest.TempPathFactory, environment: dict[str, str]
) -> tuple[Path, str]:
    """This repository's working tree (tracked and untracked, minus ignored files),
    committed in a copy: what a user's `rev` would point at."""
    copy = tmp_path_factory.mktemp("bnlint-hook-repo")
    listed = _git(REPO, environment, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in listed.split("\0"):
        source = REPO / name
        if name and source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    _git(copy, environment, "init", "-q")
    _git(copy, environment, "add", "-A")
    _git(copy, environment, "commit", "-q", "-m", "hook repository")
    return copy, _git(copy, environment, "rev-parse", "HEAD")


@pytest.fixture
def user_repository(
    tmp_path: Path, environment: dict[str, str], hook_repository: tuple[Path, str]
) -> Iterator[Path]:
    """A project using bnlint through pre-commit, with the git hook installed."""
    repo_path, rev = hook_repository
    project = tmp_path / "project"
    project.mkdir()
    _git(project, environment, "init", "-q")
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n-   repo: {repo_path}\n    rev: {rev}\n    hooks:\n    -   id: bnlint\n"
    )
    (project / "pyproject.toml").write_text(
        "[project]\nname = 'sample'\n\n[tool.bnlint]\nextend-exclude = ['generated/']\n"
    )
    _git(project, environment, "add", ".pre-commit-config.yaml", "pyproject.toml")
    _git(project, environment, "commit", "-q", "-m", "configure pre-commit")
    installed = _run([sys.executable, "-m", "pre_commit", "install"], project, environment)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield project


def _commit(project: Path, env: dict[str, str], *files: str) -> subprocess.CompletedProcess[str]:
    _git(project, env, "add", *files)
    return _run(["git", "commit", "-m", f"add {' '.join(files)}"], project, env)


def test_commit_with_a_misuse_fails_and_prints_the_finding(
    user_repository: Path, environment: dict[str, str]
) -> None:
    (user_repository / "validate.py").write_text(BAD)
    done = _commit(user_repository, environment, "validate.py")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "bnlint (BatchNorm misuse)" in output
    assert "Failed" in output
    assert "validate.py:5:5: BN007 [error] `model.eval` is not called" in output


def test_notebooks_are_checked(user_repository: Path, environment: dict[str, str]) -> None:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Validation"]},
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": ["import torch\n"],
        },
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": ["%matplotlib inline\n", "model.eval\n"],
        },
    ]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (user_repository / "validate.ipynb").write_text(json.dumps(notebook, indent=1))
    done = _commit(user_repository, environment, "validate.ipynb")
    assert done.returncode != 0
    assert "validate.ipynb:cell 3:2:1: BN007" in done.stdout + done.stderr


def test_commit_of_correct_code_passes(user_repository: Path, environment: dict[str, str]) -> None:
    (user_repository / "validate.py").write_text(GOOD)
    done = _commit(user_repository, environment, "validate.py")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "bnlint (BatchNorm misuse)" in output and "Passed" in output


def test_commit_without_python_files_runs_cleanly(
    user_repository: Path, environment: dict[str, str]
) -> None:
    (user_repository / "notes.md").write_text("# Notes\n")
    done = _commit(user_repository, environment, "notes.md")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "(no files to check)" in output and "Skipped" in output


def test_configured_excludes_apply_to_files_pre_commit_names(
    user_repository: Path, environment: dict[str, str]
) -> None:
    (user_repository / "generated").mkdir()
    (user_repository / "generated" / "validate.py").write_text(BAD)
    done = _commit(user_repository, environment, "generated/validate.py")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "BN007" not in output


def test_fix_hook_fixes_the_file(
    user_repository: Path, environment: dict[str, str], hook_repository: tuple[Path, str]
) -> None:
    repo_path, rev = hook_repository
    (user_repository / ".pre-commit-config.yaml").write_text(
        f"repos:\n-   repo: {repo_path}\n    rev: {rev}\n    hooks:\n    -   id: bnlint-fix\n"
    )
    (user_repository / "validate.py").write_text(BAD)
    done = _commit(user_repository, environment, ".pre-commit-config.yaml", "validate.py")
    # pre-commit fails a hook that modified files, so the user can review and re-add.
    assert done.returncode != 0
    assert "files were modified by this hook" in done.stdout + done.stderr
    assert (user_repository / "validate.py").read_text() == GOOD
    done = _commit(user_repository, environment, "validate.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_hook_environment_has_no_torch(user_repository: Path, environment: dict[str, str]) -> None:
    (user_repository / "validate.py").write_text(GOOD)
    assert _commit(user_repository, environment, "validate.py").returncode == 0
    cache = Path(environment["PRE_COMMIT_HOME"])
    site_packages = list(cache.glob("repo*/py_env-*/lib/python*/site-packages"))
    assert site_packages, f"no hook environment under {cache}"
    for directory in site_packages:
        installed = {path.name.lower() for path in directory.iterdir()}
        assert any(name.startswith("libcst") for name in installed)
        assert not any(name == "torch" or name.startswith("torch-") for name in installed)
