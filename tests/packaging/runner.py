"""Runs a composite GitHub Action's steps the way the Actions runner does, on this machine.

The runner, for each step of ``runs.steps`` of a composite ``action.yml``:

* evaluates ``if:``, skipping the step when false;
* evaluates the ``${{ … }}`` expressions of the step's ``env:`` (inputs, earlier steps'
  outputs) into environment variables;
* writes ``run:`` to a script file and runs it with ``bash --noprofile --norc -eo pipefail``
  (the command behind ``shell: bash``), with ``GITHUB_ACTION_PATH`` set to the action's
  directory and ``GITHUB_OUTPUT`` to a fresh file, from which it then reads the step's outputs
  (``name=value`` lines and ``name<<DELIMITER`` blocks);
* stops at the first failing step.

Only the expression forms the action is allowed to use are understood: ``inputs.NAME``,
``steps.ID.outputs.NAME`` and ``github.action_path``, and ``if:`` conditions comparing an input
with ``''``. Anything else fails the test, which keeps the action simple enough to check here.
A ``uses:`` step whose condition holds cannot run here and fails the run as well.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ActionRun", "StepRun", "load_action", "parse_outputs", "run_action"]

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_CONDITION = re.compile(rf"inputs\.({_NAME})\s*(==|!=)\s*''")


@dataclass(frozen=True)
class StepRun:
    """One step the runner ran (or skipped)."""

    name: str
    skipped: bool
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    outputs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionRun:
    """The steps of one use of the action and its outputs."""

    steps: tuple[StepRun, ...]
    outputs: Mapping[str, str]

    @property
    def ok(self) -> bool:
        """Whether every step that ran succeeded."""
        return all(step.returncode == 0 for step in self.steps)

    @property
    def log(self) -> str:
        """Everything the steps printed, for assertion messages."""
        return "\n".join(
            f"--- {step.name} (exit {step.returncode})\n{step.stdout}{step.stderr}"
            for step in self.steps
            if not step.skipped
        )


def load_action(path: Path) -> dict[str, Any]:
    """``action.yml`` as a mapping."""
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), "action.yml is not a mapping"
    return document


def parse_outputs(text: str) -> dict[str, str]:
    """The outputs a step wrote to ``GITHUB_OUTPUT``."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            for item in lines:
                if item == delimiter:
                    break
                value.append(item)
            else:
                raise AssertionError(f"output {name!r}: delimiter {delimiter!r} never closed")
            outputs[name] = "\n".join(value)
        else:
            name, sep, single = line.partition("=")
            assert sep, f"malformed GITHUB_OUTPUT line {line!r}"
            outputs[name] = single
    return outputs


class _Context:
    def __init__(self, inputs: Mapping[str, str], action_path: Path) -> None:
        self.inputs = inputs
        self.action_path = action_path
        self.steps: dict[str, dict[str, str]] = {}

    def value(self, expression: str) -> str:
        if expression == "github.action_path":
            return str(self.action_path)
        match = re.fullmatch(rf"inputs\.({_NAME})", expression)
        if match:
            name = match.group(1)
            assert name in self.inputs, f"expression uses undeclared input {name!r}"
            return self.inputs[name]
        match = re.fullmatch(rf"steps\.({_NAME})\.outputs\.({_NAME})", expression)
        if match:
            return self.steps.get(match.group(1), {}).get(match.group(2), "")
        raise AssertionError(f"expression not understood by this runner: {expression!r}")

    def substitute(self, text: str) -> str:
        return _EXPRESSION.sub(lambda m: self.value(m.group(1)), text)

    def condition(self, text: str | bool | None) -> bool:
        if text is None:
            return True
        if isinstance(text, bool):
            return text
        inner = _EXPRESSION.fullmatch(text.strip())
        expression = inner.group(1) if inner else text.strip()
        match = _CONDITION.fullmatch(expression)
        assert match, f"if: condition not understood by this runner: {text!r}"
        empty = self.value(f"inputs.{match.group(1)}") == ""
        return empty if match.group(2) == "==" else not empty


def run_action(
    action_path: Path,
    *,
    inputs: Mapping[str, str],
    env: Mapping[str, str],
    workspace: Path,
    scratch: Path,
    timeout: float = 300,
) -> ActionRun:
    """Run the composite action in ``action_path`` with ``inputs``, as the runner would.

    ``env`` is the job's environment (``GITHUB_*``, ``RUNNER_*``, ``ACTIONS_*`` variables and
    ``PATH``); scripts run in ``workspace``; ``scratch`` holds the script and output files.
    """
    action = load_action(action_path / "action.yml")
    runs = action["runs"]
    assert runs["using"] == "composite"
    declared: dict[str, Any] = action.get("inputs") or {}
    unknown = set(inputs) - set(declared)
    assert not unknown, f"inputs not declared by the action: {sorted(unknown)}"
    values = {
        name: str(inputs.get(name, (spec or {}).get("default", "")))
        for name, spec in declared.items()
    }
    context = _Context(values, action_path)
    scratch.mkdir(parents=True, exist_ok=True)
    done: list[StepRun] = []
    for index, step in enumerate(runs["steps"]):
        name = str(step.get("name") or step.get("id") or f"step {index}")
        if not context.condition(step.get("if")):
            done.append(StepRun(name, skipped=True))
            continue
        assert "uses" not in step, f"step {name!r} uses {step['uses']}, which cannot run here"
        assert step.get("shell") == "bash", f"step {name!r}: only shell: bash is simulated"
        script = scratch / f"step-{index}.sh"
        script.write_text(str(step["run"]))
        output_file = scratch / f"step-{index}.output"
        output_file.write_text("")
        step_env = dict(env)
        step_env.update(
            {key: context.substitute(str(value)) for key, value in (step.get("env") or {}).items()}
        )
        step_env["GITHUB_ACTION_PATH"] = str(action_path)
        step_env["GITHUB_OUTPUT"] = str(output_file)
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        outputs = parse_outputs(output_file.read_text())
        done.append(StepRun(name, False, result.returncode, result.stdout, result.stderr, outputs))
        if result.returncode != 0:
            return ActionRun(tuple(done), {})
        if "id" in step:
            context.steps[str(step["id"])] = outputs
    action_outputs = {
        name: context.substitute(str(spec["value"]))
        for name, spec in (action.get("outputs") or {}).items()
    }
    return ActionRun(tuple(done), action_outputs)
