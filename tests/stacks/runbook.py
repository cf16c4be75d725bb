"""Read the shell commands of a runbook (stacks/RUNNING.md) and check them against the code, so the document cannot
drift from it: Pulumi's order (a stack exists before its config is set or it is deployed), every file a command
names exists (and is executable where it is run directly), every `modelops` subcommand and option exists."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.MULTILINE | re.DOTALL)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PATH_WORD = re.compile(r"^(?:\./)?(?:stacks|bento|loadtests|modelops|tests|\.venv)/[\w./-]*[\w]$")
# Pulumi subcommands that need the stack to exist: `pulumi stack init STACK` must come first.
NEEDS_STACK = ("config set", "preview", "up", "destroy", "stack output", "refresh")


@dataclass(frozen=True)
class Command:
    line: int  # where it starts in the document (1-based)
    words: list[str]

    @property
    def program(self) -> list[str]:
        """The words after leading VAR=value assignments."""
        words = list(self.words)
        while words and ASSIGNMENT.match(words[0]):
            words.pop(0)
        return words


def commands(markdown: str) -> list[Command]:
    """Every command of every ```bash block, in document order: continuation lines joined, comments dropped,
    `a && b`, `a; b` and pipelines split into their commands."""
    found: list[Command] = []
    for block in FENCE.finditer(markdown):
        first_line = markdown.count("\n", 0, block.start(1)) + 1
        text = block.group(1)
        joined: list[tuple[int, str]] = []
        pending, start = "", 0
        for offset, raw in enumerate(text.splitlines()):
            if not pending:
                start = first_line + offset
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            joined.append((start, pending + raw))
            pending = ""
        for line, source in joined:
            try:
                lexer = shlex.shlex(source, posix=True, punctuation_chars=";&|()")
                lexer.whitespace_split = True
                lexer.commenters = "#"
                tokens = list(lexer)
            except ValueError:
                continue  # a multi-line python -c string: not a command line of its own
            words: list[str] = []
            for token in [*tokens, ";"]:
                if token and set(token) <= set(";&|()"):
                    if words:
                        found.append(Command(line, words))
                    words = []
                else:
                    words.append(token)
    return found


def _stack_of(words: list[str]) -> str | None:
    for flag in ("-s", "--stack"):
        if flag in words and words.index(flag) + 1 < len(words):
            return words[words.index(flag) + 1]
    return None


def problems(found: list[Command], root: Path, modelops_options: dict[str, set[str]]) -> list[str]:
    """What is wrong with ``found``, each naming the line. ``modelops_options``: subcommand -> its option names."""
    issues: list[str] = []
    initialised: set[str] = set()
    for command in found:
        words = command.program
        if not words:
            continue
        where = f"line {command.line}: `{' '.join(command.words)}`"
        if words[:3] == ["pulumi", "stack", "init"] and len(words) > 3:
            initialised.add(words[3])
        elif words[0] == "pulumi":
            rest = " ".join(words[1:])
            stack = _stack_of(words)
            if stack and any(rest.startswith(sub) for sub in NEEDS_STACK) and stack not in initialised:
                issues.append(f"{where} uses stack {stack!r} before `pulumi stack init {stack}`")
        if words[:3] == ["kind", "load", "docker-image"]:
            # Docker >= 29's containerd image store: "content digest ... not found" (kind#3795, kind#4066).
            issues.append(
                f"{where}: `kind load docker-image` fails with Docker >= 29 (containerd image store); use "
                "`docker save --platform P IMAGE -o FILE` + `kind load image-archive FILE` as stacks/kind/image.sh does"
            )
        program = words[0]
        if PATH_WORD.match(program):
            path = root / program
            if not path.is_file():
                issues.append(f"{where} runs {program}, which does not exist")
            elif not os.access(path, os.X_OK):
                issues.append(f"{where} runs {program}, which is not executable (git mode 100644?)")
        for word in words[1:]:
            if PATH_WORD.match(word) and not word.startswith(".venv/") and not (root / word).exists():
                issues.append(f"{where} names {word}, which does not exist")
        if Path(program).name == "modelops" and len(words) > 1:
            sub = words[1]
            if sub not in modelops_options:
                issues.append(f"{where}: `modelops {sub}` is not a modelops command ({', '.join(modelops_options)})")
                continue
            for word in words[2:]:
                option = word.split("=", 1)[0]
                if option.startswith("-") and option not in modelops_options[sub]:
                    issues.append(f"{where}: `modelops {sub}` has no option {option}")
    return issues
