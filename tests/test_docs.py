"""The docs cannot drift from the code: every documented `mriharmony` command names real subcommands and options,
every `python -m` module exists, and the documented run-folder tree is the layout's."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from pipeline.cli import build_parser
from pipeline.run import RunLayout

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "bundles").glob("*/docs/README.md")])
DOCS += [ROOT / "docker" / "README.md"]


def _commands(text: str) -> list[str]:
    """Shell commands of a Markdown text: lines of indented or fenced code blocks (joined over trailing
    backslashes) and inline code spans that start with a command."""
    lines, in_fence, commands = text.splitlines(), False, []
    code = []
    for line in lines:
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence or line.startswith("    "):
            code.append(line.strip())
    current = ""
    for line in code:
        current = f"{current} {line[:-1]}" if line.endswith("\\") else f"{current} {line}"
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    commands += re.findall(r"`((?:mriharmony|python -m) [^`]+)`", text)
    return commands


def _tokens(command: str) -> list[str]:
    command = command.split(" #", 1)[0]  # a trailing comment
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _mriharmony_calls(command: str) -> list[list[str]]:
    """Each `mriharmony ...` invocation in a command line (also after `&&` or `;`), and each job of the docker
    image (`docker run ... mriharmony:TAG COMMAND ...`, except its `bundle` jobs)."""
    calls, tokens = [], _tokens(command)
    for i, token in enumerate(tokens):
        image_job = token.startswith("mriharmony:") and tokens[i - 1 : i] != ["-t"]
        if image_job and tokens[i + 1 : i + 2] == ["bundle"]:
            continue
        if token in ("mriharmony", ".venv/bin/mriharmony", "$(BIN)/mriharmony") or image_job:
            rest = []
            for t in tokens[i + 1 :]:
                if t in ("&&", ";", "|", "||"):
                    break
                rest.append(t)
            calls.append(rest)
    return calls


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _problems(call: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """What a documented call names that the parser does not have."""
    words = [t for t in call if not t.startswith("-")]
    while (choices := _subparsers(parser)) and words:
        name = words.pop(0)
        if name in ("COMMAND", "..."):
            return []
        if name not in choices:
            return [f"no subcommand {name!r} (has {sorted(choices)})"]
        parser = choices[name]
    if _subparsers(parser) and not words and call and not any(t in ("-h", "--help") for t in call):
        return []  # a group named alone, as in a table: `mriharmony benchmark`
    options = {s for action in parser._actions for s in action.option_strings}
    return [
        f"no option {flag} in `{parser.prog}`"
        for flag in (t.split("=", 1)[0] for t in call if t.startswith("--"))
        if flag not in options
    ]


CALLS = [
    (doc, command, call)
    for doc in DOCS
    for command in _commands(doc.read_text())
    for call in _mriharmony_calls(command)
    if call
]


def test_the_docs_hold_mriharmony_commands():
    assert len(CALLS) >= 40, "the documentation's commands were not found"
    subcommands = {call[0] for _, _, call in CALLS}
    assert {"demo", "preprocess", "harmonize", "evaluate", "benchmark", "cohort", "split"} <= subcommands


@pytest.mark.parametrize(
    "doc,command,call", CALLS, ids=[f"{d.relative_to(ROOT)}:{' '.join(c[:2])}" for d, _, c in CALLS]
)
def test_documented_command_names_real_options(doc, command, call):
    assert _problems(call, build_parser()) == [], f"{doc.relative_to(ROOT)}: {command}"


def test_the_checker_sees_a_wrong_option_and_subcommand():
    parser = build_parser()
    assert _problems(["harmonize", "deriv", "--bundle", "b", "--out", "o"], parser) == []
    wrong = _problems(["harmonize", "deriv", "--bundel", "b"], parser)
    assert wrong == ["no option --bundel in `mriharmony harmonize`"]
    assert _problems(["evaluate", "harmonisation", "--raw", "r"], parser)[0].startswith("no subcommand 'harmonisation'")
    assert _problems(["benchmark", "brain-age", "--seeds=3"], parser) == []


def test_documented_python_modules_exist():
    modules = set()
    for doc in DOCS:
        for command in _commands(doc.read_text()):
            tokens = _tokens(command)
            modules.update(b for a, b in zip(tokens, tokens[1:]) if a == "-m" and re.fullmatch(r"[\w.]+", b))
    assert "pipeline.performance.cyclegan" in modules
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    assert missing == []


def test_the_documented_run_folder_is_the_layout():
    text = (ROOT / "docs" / "usage.md").read_text()
    block = re.search(r"<!-- begin run-layout -->\n```\n(.*?)\n```\n<!-- end run-layout -->", text, re.S)
    assert block, "docs/usage.md lost its run-layout block"
    assert block.group(1) == RunLayout("mriharmony-demo").tree(), "regenerate it: python -m pipeline.run"
