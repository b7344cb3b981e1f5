"""deploy/Dockerfile read as Docker reads it, enough for the tests: stages, instructions with
their continuation lines joined, ENV, COPY, exec-form commands."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from .deploy_files import DEPLOY

DOCKERFILE = DEPLOY / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"no {instruction} in the stage FROM {self.base}"
        return found[-1]


def stages() -> list[Stage]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments) with continuations joined."""
    lines, pending = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    arguments: dict[str, str] = {}
    found: list[Stage] = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not found:
            name, _, default = rest.partition("=")
            arguments[name] = default
        elif instruction == "FROM":
            words = rest.split()
            base = words[0]
            for name, value in arguments.items():
                base = base.replace(f"${{{name}}}", value)
            found.append(Stage(base, words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        else:
            found[-1].instructions.append((instruction, rest))
    return found


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)  # the exec (JSON) form: no shell between Docker and the program
    assert isinstance(parsed, list) and all(isinstance(word, str) for word in parsed), arguments
    return parsed


def environment(stage: Stage) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for arguments in stage.all("ENV"):
        for assignment in shlex.split(arguments):
            name, _, value = assignment.partition("=")
            pairs[name] = value
    return pairs


def copies(stage: Stage) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY of the build context (not --from another stage)."""
    found = []
    for arguments in stage.all("COPY"):
        words = arguments.split()
        if any(word.startswith("--from") for word in words):
            continue
        found.append((words[:-1], words[-1]))
    return found


def runtime() -> Stage:
    return stages()[-1]


def build() -> Stage:
    (stage,) = [s for s in stages() if s.name == "build"]
    return stage
