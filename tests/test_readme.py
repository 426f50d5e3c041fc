"""The README's commands stay true: every `ganforge ...` line in its shell blocks parses with the
current command line (subcommand and flags exist, values have the right types), every preset and
config key it names resolves, and every `python -m benchmarks.X` names a benchmark."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ganforge.cli import build_parser
from ganforge.config import resolve
from ganforge.validation import validate

ROOT = Path(__file__).resolve().parent.parent


def _shell_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


GANFORGE = [ln for ln in _shell_lines() if ln.startswith("ganforge ")]


def test_the_readme_has_commands():
    assert len(GANFORGE) > 30


@pytest.mark.parametrize("line", GANFORGE)
def test_every_ganforge_command_parses(line):
    args = build_parser().parse_args(shlex.split(line)[1:])
    if args.command == "train" and not args.resume:  # presets and --set overrides resolve and validate
        overrides = [o for o in (args.set or []) if not o.startswith("data.name=folder:")]
        validate(resolve(args.preset, None, overrides))


def test_benchmark_commands_name_benchmarks():
    for line in _shell_lines():
        m = re.match(r"(?:\.venv/bin/)?python -m benchmarks\.(\w+)", line)
        if m:
            assert (ROOT / "benchmarks" / f"{m.group(1)}.py").is_file(), line
