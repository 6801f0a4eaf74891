"""The command line as users and editors drive it: output shape, exit codes, stdin."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, run_cli

BAD = "import torch\n\nmodel = torch.nn.BatchNorm1d(4)\nmodel.eval\n"
GOOD = "import torch\n\nmodel = torch.nn.BatchNorm1d(4)\nmodel.eval()\n"
LINE = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<code>BN\d{3}) \[(?P<sev>\w+)\] "
)


def test_clean_project_exits_zero(project: Path) -> None:
    (project / "good.py").write_text(GOOD)
    result = run_cli("check")
    assert result.exit_code == 0, result.output
    assert "0 findings" in result.output


def test_findings_exit_one_with_editor_parsable_lines(project: Path) -> None:
    (project / "bad.py").write_text(BAD)
    result = run_cli("check", ".")
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    match = LINE.match(first)
    assert match, first
    assert match.group("path", "line", "col", "code") == ("bad.py", "4", "1", "BN007")
    assert result.output.splitlines()[1].strip().startswith("help:")
    assert "1 finding (1 fixable) in 1 file" in result.output


def test_exit_zero_keeps_findings_but_exits_zero(project: Path) -> None:
    (project / "bad.py").write_text(BAD)
    result = run_cli("check", "--exit-zero")
    assert result.exit_code == 0
    assert "BN007" in result.output


def test_unknown_select_code_is_a_usage_error(project: Path) -> None:
    result = run_cli("check", "--select", "BN777")
    assert result.exit_code == 2
    assert "BN777" in result.stderr


def test_select_accepts_names_and_prefixes(project: Path) -> None:
    (project / "bad.py").write_text(BAD)
    assert run_cli("check", "--select", "mode-method-not-called").exit_code == 1
    assert run_cli("check", "--select", "BN0").exit_code == 1
    assert run_cli("check", "--ignore", "BN007").exit_code == 0


def test_nonexistent_path_is_a_usage_error_naming_it(project: Path) -> None:
    result = run_cli("check", "missing_dir/model.py")
    assert result.exit_code == 2
    assert "missing_dir/model.py" in result.stderr


def test_bad_toml_is_a_config_error(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.bnlint\nselect = [")
    (project / "good.py").write_text(GOOD)
    result = run_cli("check")
    # no [tool.bnlint] table can be read, so the file is not bnlint's config ...
    assert result.exit_code in (0, 2)
    result = run_cli("check", "--config", "pyproject.toml")
    assert result.exit_code == 2
    assert "not valid TOML" in result.stderr


def test_unknown_config_key_is_an_error(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.bnlint]\nselekt = ['BN007']\n")
    result = run_cli("check")
    assert result.exit_code == 2
    assert "selekt" in result.stderr


def test_unknown_code_in_config_is_an_error(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.bnlint]\nignore = ['BN123']\n")
    result = run_cli("check")
    assert result.exit_code == 2
    assert "BN123" in result.stderr


def test_wrongly_typed_option_is_an_error(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.bnlint]\nsmall-batch-threshold = 'eight'\n")
    assert run_cli("check").exit_code == 2


def test_config_ignore_and_per_file_ignores_apply(project: Path) -> None:
    (project / "pkg").mkdir()
    (project / "pkg" / "bad.py").write_text(BAD)
    (project / "tests").mkdir()
    (project / "tests" / "bad.py").write_text(BAD)
    (project / "pyproject.toml").write_text(
        "[tool.bnlint]\nper-file-ignores = { 'tests/*' = ['BN007'] }\n"
    )
    result = run_cli("check", "--format", "json")
    assert [f["filename"] for f in json.loads(result.output)] == ["pkg/bad.py"]


def test_config_is_found_walking_up_from_the_checked_path(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.bnlint]\nignore = ['BN007']\n")
    (project / "src" / "deep").mkdir(parents=True)
    (project / "src" / "deep" / "bad.py").write_text(BAD)
    assert run_cli("check", "src/deep/bad.py").exit_code == 0


def test_excludes_and_gitignore_are_respected_in_directories(project: Path) -> None:
    for folder in ("generated", "ignored_by_git", ".hidden", "build", "ok"):
        (project / folder).mkdir()
        (project / folder / "bad.py").write_text(BAD)
    (project / ".gitignore").write_text("ignored_by_git/\n")
    (project / "pyproject.toml").write_text("[tool.bnlint]\nextend-exclude = ['generated']\n")
    result = run_cli("check", "--format", "json")
    assert [f["filename"] for f in json.loads(result.output)] == ["ok/bad.py"]


def test_an_explicitly_named_file_is_always_checked(project: Path) -> None:
    (project / "build").mkdir()
    (project / "build" / "bad.py").write_text(BAD)
    assert run_cli("check", "build/bad.py").exit_code == 1


def test_stdin_with_stdin_filename_reports_that_name(project: Path) -> None:
    result = run_cli("check", "--stdin-filename", "models/f.py", "-", input=BAD)
    assert result.exit_code == 1
    assert result.output.startswith("models/f.py:4:1: BN007")


def test_stdin_uses_the_config_found_from_the_stdin_filename(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.bnlint]\nignore = ['BN007']\n")
    result = run_cli("check", "--stdin-filename", "f.py", "-", input=BAD)
    assert result.exit_code == 0


def test_stdin_in_a_real_pipe(project: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bnlint", "check", "--stdin-filename", "f.py", "-"],
        input=BAD.encode(),
        capture_output=True,
        cwd=project,
    )
    assert completed.returncode == 1
    assert completed.stdout.decode().startswith("f.py:4:1: BN007 [error]")


def test_output_file_receives_the_report(project: Path) -> None:
    (project / "bad.py").write_text(BAD)
    result = run_cli("check", "--format", "json", "--output-file", "out.json")
    assert result.exit_code == 1
    assert json.loads((project / "out.json").read_text())[0]["code"] == "BN007"


def test_every_format_renders_the_finding(project: Path) -> None:
    (project / "bad.py").write_text(BAD)
    assert json.loads(run_cli("check", "--format", "json").output)[0]["location"] == {
        "row": 4,
        "column": 1,
    }
    sarif = json.loads(run_cli("check", "--format", "sarif").output)
    assert sarif["runs"][0]["results"][0]["ruleId"] == "BN007"
    assert run_cli("check", "--format", "github").output.startswith("::error file=bad.py,line=4")


def test_statistics_and_quiet(project: Path) -> None:
    (project / "bad.py").write_text(BAD + "net.train\n")
    stats = run_cli("check", "--statistics").output
    assert re.search(r"^\s*2\s+BN007", stats, re.MULTILINE), stats
    quiet = run_cli("check", "--quiet").output
    assert "finding" not in quiet.split("help:")[-1]


def test_color_never_and_always(project: Path) -> None:
    (project / "bad.py").write_text(BAD)
    assert "\x1b[" not in run_cli("check", "--color", "never").output
    assert "\x1b[" in run_cli("check", "--color", "always").output


def test_rule_command_prints_documentation_by_code_or_name() -> None:
    by_code = run_cli("rule", "BN007")
    assert by_code.exit_code == 0
    assert "## Why is this bad?" in by_code.output
    assert run_cli("rule", "mode-method-not-called").output == by_code.output
    assert run_cli("rule", "BN777").exit_code == 2


def test_rules_command_lists_every_rule_with_its_default() -> None:
    from bnlint.registry import all_rules

    output = run_cli("rules").output
    for code, rule in all_rules().items():
        assert re.search(rf"^{code}\s+{rule.name}\s", output, re.MULTILINE)


def test_version() -> None:
    from bnlint import __version__

    assert __version__ in run_cli("--version").output


def test_importing_the_cli_does_not_import_torch_or_libcst() -> None:
    code = (
        "import sys, bnlint.cli, bnlint.registry; bnlint.registry.all_rules();"
        "assert 'torch' not in sys.modules, 'torch';"
        "assert 'libcst._nodes.module' not in sys.modules, 'libcst'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_bnlint_and_the_static_path_import_no_optional_framework() -> None:
    # Lightning, transformers and accelerate are optional extras: only the integration
    # modules import them, `import bnlint`, the CLI and a static check never do.
    code = (
        "import sys, bnlint, bnlint.cli, bnlint.integrations, bnlint.registry;"
        "from bnlint.cli import main\n"
        "try:\n    main(['check', '--no-cache', 'examples'])\n"
        "except SystemExit:\n    pass\n"
        "loaded = {'torch', 'lightning', 'pytorch_lightning', 'transformers', 'accelerate'}"
        " & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_files_without_trigger_words_are_not_parsed(project: Path) -> None:
    (project / "plain.py").write_text("def add(a, b):\n    return a + b\n")
    code = (
        "import sys\nfrom bnlint.cli import main\n"
        "try:\n    main(['check', '--no-cache', '.'])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'libcst._nodes.module' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=project)


def test_running_stats_constructor_option_is_accepted_and_used(project: Path) -> None:
    (project / "m.py").write_text(
        "from torch import nn\nbn = nn.BatchNorm2d(8, track_running_stats=False)\n"
    )
    assert run_cli("check").exit_code == 0
    (project / "pyproject.toml").write_text("[tool.bnlint]\nrunning-stats-constructor = true\n")
    result = run_cli("check", "--format", "json")
    assert [f["code"] for f in json.loads(result.output)] == ["BN013"]


def test_eval_function_names_reach_files_without_trigger_words(project: Path) -> None:
    model = (
        "from torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 8, 3, bias=False)\n"
        "        self.bn = nn.BatchNorm2d(8)\n\n"
        "    def forward(self, x):\n"
        "        return self.bn(self.conv(x)).relu()\n"
    )
    (project / "net.py").write_text(model)
    (project / "score.py").write_text(
        "from net import Net\n\n"
        "def score_batches(batches):\n"
        "    model = Net()\n"
        "    return [model(x) for x in batches]\n"
    )
    assert run_cli("check", "--select", "BN002").exit_code == 0
    (project / "pyproject.toml").write_text('[tool.bnlint]\neval-function-names = ["score_*"]\n')
    result = run_cli("check", "--select", "BN002", "--format", "json")
    assert [(f["filename"], f["code"]) for f in json.loads(result.output)] == [
        ("score.py", "BN002")
    ]


def test_rule_catalog_matches_the_rule_classes() -> None:
    from bnlint.registry import _meta, all_rules, catalog

    assert catalog() == {code: _meta(rule) for code, rule in all_rules().items()}


def test_a_file_no_rule_cares_about_imports_no_rule_module(project: Path) -> None:
    (project / "plain.py").write_text("def add(a, b):\n    return a + b\n")
    code = (
        "import sys\nfrom bnlint.cli import main\n"
        "try:\n    main(['check', '--no-cache', '.'])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "loaded = [m for m in sys.modules if m.startswith('bnlint.rules.bn')]\n"
        "assert loaded == [], loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=project)
