"""Jupyter notebooks: checked cell by cell as one program, reported by cell, fixed in
place without touching outputs or metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import FIXTURES, run_cli

NOTEBOOK = FIXTURES / "notebooks" / "training.ipynb"


def _copy(project: Path) -> Path:
    target = project / "training.ipynb"
    shutil.copy(NOTEBOOK, target)
    return target


def test_findings_are_located_by_cell_and_line(project: Path) -> None:
    _copy(project)
    result = run_cli("check", "--select", "BN007,BN010")
    lines = [line for line in result.output.splitlines() if line.startswith("training")]
    assert [line.split(" [")[0] for line in lines] == [
        "training.ipynb:cell 2:7:33: BN010",
        "training.ipynb:cell 3:2:1: BN007",
        "training.ipynb:cell 5:3:5: BN007",
    ]


def test_json_carries_the_cell_with_cell_relative_rows(project: Path) -> None:
    _copy(project)
    findings = json.loads(run_cli("check", "--select", "BN007", "--format", "json").output)
    assert [(f["cell"], f["location"]["row"], f["location"]["column"]) for f in findings] == [
        (3, 2, 1),
        (5, 3, 5),
    ]


def test_sarif_names_the_cell(project: Path) -> None:
    _copy(project)
    sarif = json.loads(run_cli("check", "--select", "BN007", "--format", "sarif").output)
    result = sarif["runs"][0]["results"][0]
    assert result["properties"]["cell"] == 3
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 2


def test_noqa_in_a_cell_suppresses(project: Path) -> None:
    _copy(project)
    findings = json.loads(run_cli("check", "--select", "BN007", "--format", "json").output)
    assert (5, 2) not in {(f["cell"], f["location"]["row"]) for f in findings}


def test_fix_rewrites_the_cells_and_keeps_outputs_and_metadata(project: Path) -> None:
    target = _copy(project)
    before = json.loads(target.read_text())
    result = run_cli("check", "--fix", "--select", "BN007")
    after = json.loads(target.read_text())
    assert result.exit_code == 0
    assert after["cells"][2]["source"][1] == "model.eval()\n"
    assert after["cells"][4]["source"][2] == "    model.train()\n"
    assert after["cells"][4]["source"][1] == "    model.train  # noqa: BN007\n"
    # IPython lines, outputs, metadata and the other cells are untouched.
    assert after["cells"][2]["source"][0] == "!nvidia-smi\n"
    assert after["cells"][1]["source"][0] == "%matplotlib inline\n"
    assert after["cells"][4]["source"][3] == "    model?"
    for key in ("outputs", "metadata", "execution_count"):
        assert [c.get(key) for c in after["cells"]] == [c.get(key) for c in before["cells"]]
    assert after["metadata"] == before["metadata"]
    assert {k: v for k, v in after.items() if k != "cells"} == {
        k: v for k, v in before.items() if k != "cells"
    }
    # Only the two fixed lines differ in the file's text.
    old_lines, new_lines = NOTEBOOK.read_text().splitlines(), target.read_text().splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert len(changed) == 2


def test_malformed_notebook_is_one_finding(project: Path) -> None:
    (project / "broken.ipynb").write_text('{"cells": [ {"cell_type": "code", ')
    (project / "ok.py").write_text("model.eval\n")
    result = run_cli("check", "--format", "json")
    findings = json.loads(result.output)
    assert [(f["filename"], f["code"]) for f in findings] == [
        ("broken.ipynb", "BN000"),
        ("ok.py", "BN007"),
    ]
    assert "not valid JSON" in findings[0]["message"]


def test_stdin_notebook_with_stdin_filename(project: Path) -> None:
    result = run_cli(
        "check",
        "--select",
        "BN007",
        "--stdin-filename",
        "nb.ipynb",
        "-",
        input=NOTEBOOK.read_text(),
    )
    assert "nb.ipynb:cell 3:2:1: BN007" in result.output


def _notebook(*cells: dict[str, object]) -> str:
    return json.dumps({"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _code(source: str, outputs: list[object] | None = None) -> dict[str, object]:
    return {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "outputs": outputs or [],
        "source": source,
    }


def test_shell_line_continued_by_a_backslash_is_not_python(project: Path) -> None:
    (project / "setup.ipynb").write_text(
        _notebook(
            _code("!pip install torch \\\n    torchvision \\\n  timm\nimport torch\n"),
            _code("model.eval\n"),
        )
    )
    findings = json.loads(run_cli("check", "--format", "json").output)
    assert [(f["code"], f["cell"]) for f in findings] == [("BN007", 2)]


def test_notebook_size_limit_counts_its_code_not_its_outputs(project: Path) -> None:
    from bnlint.engine.source import MAX_FILE_BYTES

    image = {"output_type": "display_data", "data": {"image/png": "A" * MAX_FILE_BYTES}}
    (project / "plots.ipynb").write_text(_notebook(_code("model.eval\n", [image])))
    findings = json.loads(run_cli("check", "--format", "json").output)
    assert [f["code"] for f in findings] == ["BN007"]


def test_notebook_with_too_much_code_is_one_finding(project: Path) -> None:
    from bnlint.engine.source import MAX_FILE_BYTES

    line = "x = 1  # generated\n"
    (project / "generated.ipynb").write_text(
        _notebook(_code(line * (MAX_FILE_BYTES // len(line) + 10)))
    )
    findings = json.loads(run_cli("check", "--format", "json").output)
    assert [f["code"] for f in findings] == ["BN000"]
    assert "code cells" in findings[0]["message"]
