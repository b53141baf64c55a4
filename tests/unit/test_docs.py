"""docs/writing-a-driver.md keeps up with the plugin contract (as datasette's
test_plugin_hooks_are_documented): every hook in berth.core.hookspecs has a
section, every driver kind in berth.core.drivers has a section naming each of
its public methods and attributes, and the worked example is the real code
of contrib/berth-volume-tmpfs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from berth.core import drivers, hookspecs

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "writing-a-driver.md"
CONTRIB = REPO / "contrib" / "berth-volume-tmpfs"


def _sections() -> dict[str, str]:
    """Heading line -> the text below it, up to the next heading of the same or a higher level."""
    lines = DOC.read_text().splitlines()
    in_code = False
    headings = []  # (index, level, text)
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^(#+) (.*)", line)):
            headings.append((i, len(m.group(1)), m.group(2)))
    out = {}
    for n, (i, level, text) in enumerate(headings):
        end = next((j for j, lvl, _ in headings[n + 1:] if lvl <= level), len(lines))
        out[text] = "\n".join(lines[i + 1:end])
    return out


def _section_for(name: str) -> str | None:
    for heading, body in _sections().items():
        if re.search(rf"`{re.escape(name)}\b", heading):
            return body
    return None


HOOKS = sorted(n for n, f in vars(hookspecs).items() if hasattr(f, "berth_hookspec"))
KINDS = sorted(n for n, c in vars(drivers).items()
               if inspect.isclass(c) and issubclass(c, drivers.Driver) and c is not drivers.Driver)


def test_the_contract_is_found():
    assert "register_volume_drivers" in HOOKS and "container_pre_start" in HOOKS
    assert {"StorageDriver", "VolumeDriver", "LogDriver"} <= set(KINDS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_section_headed_by_its_signature(hook):
    signature = f"`{hook}({', '.join(inspect.signature(getattr(hookspecs, hook)).parameters)})`"
    headings = [h for h in _sections() if re.search(rf"`{hook}\b", h)]
    assert headings, f"docs/writing-a-driver.md has no heading naming `{hook}`"
    assert any(signature in h for h in headings), f"the heading of {hook} should show {signature}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_driver_kind_has_a_section_with_every_member(kind):
    section = _section_for(kind)
    assert section is not None, f"docs/writing-a-driver.md has no heading naming `{kind}`"
    cls = getattr(drivers, kind)
    members = [m for m in vars(cls) if not m.startswith("_")]
    missing = [m for m in members if not re.search(rf"`{re.escape(m)}\b", section)]
    assert not missing, f"the {kind} section does not document: {', '.join(missing)}"


def test_every_value_type_of_the_interfaces_is_documented():
    text = DOC.read_text()
    values = [n for n, c in vars(drivers).items()
              if inspect.isclass(c) and c.__module__ == drivers.__name__ and n not in KINDS]
    assert {"Change", "LogEntry"} <= set(values)
    assert not [v for v in values if f"`{v}" not in text]


def test_the_worked_example_is_the_real_plugin():
    text = DOC.read_text()
    init = (CONTRIB / "berth_volume_tmpfs" / "__init__.py").read_text()
    code = init[init.index("from berth.core.hookspecs"):].strip()
    assert code in text
    pyproject = (CONTRIB / "pyproject.toml").read_text()
    entry = re.search(r"\[project\.entry-points\.berth\]\n[^\n]+", pyproject).group(0)
    assert entry in text


def test_the_cli_reference_is_what_gen_cli_writes():
    """docs/cli.md lists exactly the commands and flags berth has: regenerate it with docs/gen_cli.py."""
    import subprocess
    import sys

    generated = subprocess.run([sys.executable, str(REPO / "docs" / "gen_cli.py"), "-"], capture_output=True,
                               text=True, check=True).stdout
    assert generated == (REPO / "docs" / "cli.md").read_text(), "docs/cli.md is stale: run docs/gen_cli.py"
