"""The reporters: text, json, sarif and github output built from Finding objects.

The findings below read like a real run over a small training project: a model file
with a conv bias before BatchNorm, a training script that forgets the call in
`model.eval`, and a runtime finding from the tracer.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bnlint.finding import (
    Applicability,
    Edit,
    Finding,
    Fix,
    Position,
    RuleInfo,
    RunSummary,
    Severity,
    Source,
)
from bnlint.report import FORMATS, render
from bnlint.report.json_format import findings_schema

DATA = Path(__file__).parent / "data"
SARIF_SCHEMA_PATH = DATA / "sarif-schema-2.1.0.json"
# The GitHub problem matcher from shared/reference/ecosystem.md 1.4.
PROBLEM_MATCHER = re.compile(r"^(.+):(\d+):(\d+): ([A-Z]+\d+) (.*)$")
ANSI_ESCAPE = re.compile(r"\x1b\[")

BIAS_DOC = """Conv bias feeding BatchNorm.

## What it does
Checks for a `Conv2d` with `bias=True` whose output goes straight into `BatchNorm2d`.

## Why is this bad?
BatchNorm subtracts the batch mean, so the bias is cancelled: it costs parameters and
optimizer state and learns nothing.
"""

RULES = (
    RuleInfo(
        code="BN001",
        name="bias-before-batchnorm",
        severity=Severity.WARNING,
        default_enabled=True,
        summary="Conv or Linear bias feeding BatchNorm.",
        documentation=BIAS_DOC,
        url="https://bnlint.readthedocs.io/rules/BN001",
    ),
    RuleInfo(
        code="BN003",
        name="batch-size-one",
        severity=Severity.ERROR,
        default_enabled=True,
        summary="Training a BatchNorm model on batches of one.",
        documentation="Training a BatchNorm model on batches of one.\n\n" + "x" * 2000,
        url="https://bnlint.readthedocs.io/rules/BN003",
    ),
    RuleInfo(
        code="BN007",
        name="mode-method-not-called",
        severity=Severity.ERROR,
        default_enabled=True,
        summary="`model.eval` or `model.train` written without the call.",
        documentation="`model.eval` or `model.train` written without the call.",
        url="https://bnlint.readthedocs.io/rules/BN007",
    ),
)
SUMMARY = RunSummary(
    files_checked=3,
    rules=RULES,
    tool_version="0.1.0",
    working_directory="/home/ana/resnet-cifar",
)


def bias_finding(**changes: Any) -> Finding:
    finding = Finding(
        code="BN001",
        name="bias-before-batchnorm",
        severity=Severity.WARNING,
        path="models/resnet.py",
        start=Position(14, 21),
        end=Position(14, 63),
        message="`self.conv1` has a bias but feeds `self.bn1`, which cancels it.",
        suggestion="pass `bias=False` to the convolution",
        fix=Fix(
            applicability=Applicability.SAFE,
            edits=(Edit(Position(14, 58), Position(14, 62), "False"),),
            message="Set `bias=False`",
        ),
    )
    return dataclasses.replace(finding, **changes)


def eval_finding(**changes: Any) -> Finding:
    finding = Finding(
        code="BN007",
        name="mode-method-not-called",
        severity=Severity.ERROR,
        path="train.py",
        start=Position(88, 5),
        end=Position(88, 15),
        message="`model.eval` is read but never called, so the model stays in training mode.",
        suggestion="call it: `model.eval()`",
        fix=Fix(
            applicability=Applicability.SAFE,
            edits=(Edit(Position(88, 15), Position(88, 15), "()"),),
            message="Add `()`",
        ),
    )
    return dataclasses.replace(finding, **changes)


def runtime_finding(**changes: Any) -> Finding:
    finding = Finding(
        code="BN003",
        name="batch-size-one",
        severity=Severity.ERROR,
        path="train.py",
        start=Position(61, 9),
        end=Position(61, 30),
        message="BatchNorm2d `layer4.1.bn2` ran in training mode on a batch of one.",
        suggestion="use `drop_last=True` on the training DataLoader",
        source=Source.RUNTIME,
        count=12,
        notes=("`layer4.1.bn2` was constructed at models/resnet.py:31",),
        confirmed_at_runtime=True,
    )
    return dataclasses.replace(finding, **changes)


def all_findings() -> list[Finding]:
    # Deliberately out of order: render must sort.
    return [
        eval_finding(),
        runtime_finding(),
        bias_finding(start=Position(15, 21), end=Position(15, 63)),
        bias_finding(),
    ]


def sarif_of(findings: list[Finding], summary: RunSummary = SUMMARY) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(render("sarif", findings, summary))
    return log


def fingerprints(log: dict[str, Any]) -> list[str]:
    return [
        result["partialFingerprints"]["primaryLocationLineHash"]
        for result in log["runs"][0]["results"]
    ]


# --- dispatch -----------------------------------------------------------------------


def test_formats_lists_the_five_reporters() -> None:
    assert FORMATS == ("text", "json", "sarif", "github", "gitlab")


def test_render_rejects_an_unknown_format_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="text, json, sarif, github"):
        render("xml", [bias_finding()], SUMMARY)


# --- text ---------------------------------------------------------------------------


def test_text_first_line_is_path_line_col_code_severity_message() -> None:
    first = render("text", [bias_finding(fix=None)], SUMMARY).splitlines()[0]
    assert first == (
        "models/resnet.py:14:21: BN001 [warning] "
        "`self.conv1` has a bias but feeds `self.bn1`, which cancels it."
    )
    match = PROBLEM_MATCHER.match(first)
    assert match is not None
    assert match.group(4) == "BN001"


def test_text_orders_findings_by_path_line_column_and_code() -> None:
    same_spot = bias_finding(code="BN002", name="other")
    output = render("text", [*all_findings(), same_spot], SUMMARY)
    matches = [PROBLEM_MATCHER.match(line) for line in output.splitlines()]
    heads = [
        f"{match.group(1)}:{match.group(2)}:{match.group(3)} {match.group(4)}"
        for match in matches
        if match is not None
    ]
    assert heads == [
        "models/resnet.py:14:21 BN001",
        "models/resnet.py:14:21 BN002",
        "models/resnet.py:15:21 BN001",
        "train.py:61:9 BN003",
        "train.py:88:5 BN007",
    ]


def test_text_help_line_says_whether_a_safe_or_unsafe_fix_exists() -> None:
    unsafe = bias_finding(
        fix=Fix(Applicability.UNSAFE, (Edit(Position(1, 1), Position(1, 2), ""),), "drop")
    )
    lines = render("text", [bias_finding(), unsafe, bias_finding(fix=None)], SUMMARY)
    help_lines = [line for line in lines.splitlines() if line.startswith("    help:")]
    assert help_lines == [
        "    help: pass `bias=False` to the convolution (fix available: safe)",
        "    help: pass `bias=False` to the convolution (fix available: unsafe)",
        "    help: pass `bias=False` to the convolution",
    ]


def test_text_runtime_finding_shows_count_confirmation_and_notes() -> None:
    lines = render("text", [runtime_finding()], SUMMARY, quiet=True).splitlines()
    assert lines == [
        "train.py:61:9: BN003 [error] BatchNorm2d `layer4.1.bn2` ran in training mode on a "
        "batch of one. (seen 12 times) [confirmed at runtime]",
        "    help: use `drop_last=True` on the training DataLoader",
        "    note: `layer4.1.bn2` was constructed at models/resnet.py:31",
    ]


def test_text_summary_counts_findings_fixable_findings_and_files() -> None:
    output = render("text", all_findings(), SUMMARY)
    assert output.endswith("\n\n4 findings (3 fixable) in 3 files\n")


def test_text_summary_uses_singular_for_one_finding_and_one_file() -> None:
    one_file = dataclasses.replace(SUMMARY, files_checked=1)
    output = render("text", [bias_finding()], one_file)
    assert output.splitlines()[-1] == "1 finding (1 fixable) in 1 file"


def test_text_summary_alone_when_nothing_was_found() -> None:
    assert render("text", [], SUMMARY) == "0 findings (0 fixable) in 3 files\n"


def test_text_quiet_prints_findings_without_summary() -> None:
    output = render("text", [bias_finding()], SUMMARY, quiet=True)
    assert "finding" not in output.splitlines()[-1]
    assert output.splitlines()[-1].startswith("    help:")


def test_text_statistics_table_sorted_by_count_then_code_before_summary() -> None:
    findings = [*all_findings(), eval_finding(path="evaluate.py", fix=None)]
    lines = render("text", findings, SUMMARY, statistics=True).splitlines()
    table = lines[lines.index("count  code   name                    fixable") :]
    assert table == [
        "count  code   name                    fixable",
        "    2  BN001  bias-before-batchnorm         2",
        "    2  BN007  mode-method-not-called        1",
        "    1  BN003  batch-size-one                0",
        "",
        "5 findings (3 fixable) in 3 files",
    ]


def test_text_without_color_has_no_escape_codes() -> None:
    output = render("text", all_findings(), SUMMARY, color=False, statistics=True)
    assert not ANSI_ESCAPE.search(output)


def test_text_with_color_paints_severity_and_keeps_the_words() -> None:
    output = render("text", [eval_finding()], SUMMARY, color=True)
    assert "\x1b[31m[error]\x1b[0m" in output
    assert ANSI_ESCAPE.sub("", re.sub(r"\x1b\[[0-9;]*m", "", output)) == render(
        "text", [eval_finding()], SUMMARY
    )


# --- json ---------------------------------------------------------------------------


def test_json_output_validates_against_the_documented_schema() -> None:
    schema = findings_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    payload = json.loads(render("json", all_findings(), SUMMARY))
    jsonschema.Draft202012Validator(schema).validate(payload)
    assert len(payload) == 4


def test_json_schema_rejects_a_key_it_does_not_document() -> None:
    payload = json.loads(render("json", [bias_finding()], SUMMARY))
    payload[0]["column"] = 3
    validator = jsonschema.Draft202012Validator(findings_schema())
    assert not validator.is_valid(payload)


def test_json_round_trips_through_finding_from_json() -> None:
    payload = json.loads(render("json", all_findings(), SUMMARY))
    read_back = [Finding.from_json(item) for item in payload]
    assert read_back == sorted(all_findings(), key=Finding.sort_key)


def test_json_url_comes_from_the_rule_and_is_null_for_an_unknown_rule() -> None:
    unknown = bias_finding(code="BN042", name="not-in-this-run")
    payload = json.loads(render("json", [bias_finding(), unknown], SUMMARY))
    assert payload[0]["url"] == "https://bnlint.readthedocs.io/rules/BN001"
    assert payload[1]["url"] is None


def test_json_is_pretty_printed_with_a_trailing_newline() -> None:
    output = render("json", [bias_finding()], SUMMARY)
    assert output.startswith('[\n  {\n    "code": "BN001",')
    assert output.endswith("]\n")
    assert render("json", [], SUMMARY) == "[]\n"


# --- sarif --------------------------------------------------------------------------


def official_sarif_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SARIF_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def test_sarif_schema_file_is_the_official_2_1_0_schema() -> None:
    schema = json.loads(SARIF_SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"].endswith("/sarif-schema-2.1.0.json")
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]


def test_sarif_output_validates_against_the_official_schema() -> None:
    validator = official_sarif_validator()
    log = sarif_of(all_findings())
    errors = [error.message for error in validator.iter_errors(log)]
    assert errors == []


def test_sarif_official_schema_catches_a_broken_log() -> None:
    log = sarif_of([bias_finding()])
    log["runs"][0]["results"][0]["level"] = "warn"
    assert not official_sarif_validator().is_valid(log)


def test_sarif_result_has_rule_id_index_level_region_and_fingerprint() -> None:
    log = sarif_of([eval_finding()])
    run = log["runs"][0]
    result = run["results"][0]
    assert result["ruleId"] == "BN007"
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "BN007"
    assert result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "train.py"
    assert location["region"] == {
        "startLine": 88,
        "startColumn": 5,
        "endLine": 88,
        "endColumn": 15,
    }
    assert result["message"]["text"] == (
        "`model.eval` is read but never called, so the model stays in training mode. "
        "Fix: call it: `model.eval()`"
    )
    assert re.fullmatch(r"[0-9a-f]{16}:0", result["partialFingerprints"]["primaryLocationLineHash"])


def test_sarif_levels_map_info_to_note() -> None:
    findings = [
        eval_finding(),
        bias_finding(),
        bias_finding(severity=Severity.INFO, path="models/vgg.py"),
    ]
    levels = [result["level"] for result in sarif_of(findings)["runs"][0]["results"]]
    assert levels == ["warning", "note", "error"]


def test_sarif_fingerprints_survive_lines_added_above() -> None:
    before = sarif_of(all_findings())
    shifted = [
        dataclasses.replace(
            finding,
            start=Position(finding.start.line + 7, finding.start.column),
            end=Position(finding.end.line + 7, finding.end.column),
        )
        for finding in all_findings()
    ]
    assert fingerprints(sarif_of(shifted)) == fingerprints(before)


def test_sarif_fingerprints_tell_identical_findings_in_one_file_apart() -> None:
    prints = fingerprints(sarif_of(all_findings()))
    assert len(set(prints)) == len(prints)
    assert prints[0].split(":")[0] == prints[1].split(":")[0]
    assert [prints[0][-2:], prints[1][-2:]] == [":0", ":1"]


def test_sarif_fingerprint_changes_with_the_message() -> None:
    original = fingerprints(sarif_of([bias_finding()]))
    reworded = fingerprints(sarif_of([bias_finding(message="another conv feeds bn2")]))
    assert original != reworded


def test_sarif_driver_lists_only_the_rules_of_the_run_with_their_docs() -> None:
    only_bias = dataclasses.replace(SUMMARY, rules=RULES[:1])
    driver = sarif_of([bias_finding()], only_bias)["runs"][0]["tool"]["driver"]
    assert driver["name"] == "bnlint"
    assert driver["semanticVersion"] == "0.1.0"
    assert [rule["id"] for rule in driver["rules"]] == ["BN001"]
    rule = driver["rules"][0]
    assert rule["name"] == "bias-before-batchnorm"
    assert rule["shortDescription"]["text"] == "Conv or Linear bias feeding BatchNorm."
    assert rule["help"]["markdown"] == BIAS_DOC.strip()
    assert rule["defaultConfiguration"]["level"] == "warning"
    assert "batchnorm" in rule["properties"]["tags"]


def test_sarif_full_description_is_cut_to_github_limit() -> None:
    rules = sarif_of([])["runs"][0]["tool"]["driver"]["rules"]
    batch_size_one = next(rule for rule in rules if rule["id"] == "BN003")
    assert len(batch_size_one["fullDescription"]["text"]) == 1024
    assert len(batch_size_one["help"]["text"]) > 1024


def test_sarif_uri_is_relative_with_forward_slashes() -> None:
    windows = bias_finding(path="models\\backbones\\res net.py")
    location = sarif_of([windows])["runs"][0]["results"][0]["locations"][0]
    artifact = location["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "models/backbones/res%20net.py", "uriBaseId": "%SRCROOT%"}


def test_sarif_run_declares_code_point_columns_and_working_directory() -> None:
    run = sarif_of([bias_finding()])["runs"][0]
    assert run["columnKind"] == "unicodeCodePoints"
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is True
    assert invocation["workingDirectory"]["uri"] == "file:///home/ana/resnet-cifar/"


# --- github -------------------------------------------------------------------------


def test_github_annotation_has_location_title_message_and_help() -> None:
    output = render("github", [eval_finding()], SUMMARY)
    assert output == (
        "::error file=train.py,line=88,endLine=88,col=5,endColumn=15,"
        "title=bnlint (BN007)::`model.eval` is read but never called, so the model stays "
        "in training mode.%0A  help: call it: `model.eval()`\n"
    )


def test_github_uses_warning_and_notice_for_lower_severities() -> None:
    findings = [bias_finding(), bias_finding(severity=Severity.INFO, path="z.py")]
    commands = [line.split(" ")[0] for line in render("github", findings, SUMMARY).splitlines()]
    assert commands == ["::warning", "::notice"]


def test_github_escapes_percent_and_newlines_in_the_message() -> None:
    finding = bias_finding(message="momentum 10%\r\nfrom line 3", suggestion="use 0.1")
    output = render("github", [finding], SUMMARY)
    message = output.split("::", 2)[2]
    assert message == "momentum 10%25%0D%0Afrom line 3%0A  help: use 0.1\n"


def test_github_escapes_colon_and_comma_in_properties() -> None:
    finding = bias_finding(path="C:/runs/a,b/model.py")
    properties = render("github", [finding], SUMMARY).split("::")[1]
    assert properties.startswith("warning file=C%3A/runs/a%2Cb/model.py,line=14,")
    assert properties.count(",") == 5


def test_gitlab_code_quality_issue_shape() -> None:
    from bnlint.report import render

    finding = Finding(
        code="BN007",
        name="mode-method-not-called",
        severity=Severity.ERROR,
        path="train.py",
        start=Position(4, 1),
        end=Position(4, 11),
        message="`model.eval` is not called",
        suggestion="call it",
    )
    twin = dataclasses.replace(finding, start=Position(9, 1), end=Position(9, 11))
    summary = RunSummary(files_checked=1, rules=(), tool_version="0", working_directory="/")
    issues = json.loads(render("gitlab", [finding, twin], summary))
    assert issues[0]["check_name"] == "BN007 mode-method-not-called"
    assert issues[0]["severity"] == "critical"
    assert issues[0]["location"] == {"path": "train.py", "lines": {"begin": 4}}
    assert issues[0]["fingerprint"] != issues[1]["fingerprint"]
    moved = dataclasses.replace(finding, start=Position(40, 1), end=Position(40, 11))
    assert (
        json.loads(render("gitlab", [moved], summary))[0]["fingerprint"]
        == (issues[0]["fingerprint"])
    )
