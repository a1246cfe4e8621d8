"""The systemd units of "More machines" start commands that exist, with options those commands accept,
and their environment file names only settings the studio reads."""
from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
from django.core.management import load_command_class

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
COMMANDS = {"runstack": "nnc_web.jobs", "runworker": "nnc_web.jobs"}


def exec_start(unit: str) -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS / unit)
    return shlex.split(parser["Service"]["ExecStart"].replace("%i", "0"))


def manage_command(argv: list[str]) -> tuple[str, list[str]]:
    """`dev.sh run ...` is `manage.py runstack ...` after set-up; `python manage.py X ...` is X."""
    if argv[0].endswith("/dev.sh"):
        verb, rest = argv[1], argv[2:]
        return {"run": "runstack", "worker": "runworker"}[verb], rest
    assert argv[0].endswith("/.venv/bin/python") and argv[1] == "manage.py", argv
    return argv[2], argv[3:]


@pytest.mark.parametrize("unit", ["nnc-web.service", "nnc-worker@.service"])
def test_each_unit_starts_a_command_with_options_it_accepts(unit):
    name, args = manage_command(exec_start(unit))
    command = load_command_class(COMMANDS[name], name)
    options = command.create_parser("manage.py", name).parse_args(args)  # an unknown option exits here
    if name == "runworker":
        assert options.queues == ["gpu"] and options.gpu_ids == "0"
    else:
        assert options.host == "0.0.0.0" and options.gpu_worker == "none"


def test_the_environment_file_names_only_settings_the_studio_reads():
    names = re.findall(r"^([A-Z_]+)=", (UNITS / "nnc.env.example").read_text(), flags=re.M)
    assert {"REDIS_URL", "DATABASE_URL", "NNC_DATA_DIR"} <= set(names)
    source = "\n".join(p.read_text() for p in (ROOT / "nnc_web").rglob("*.py"))
    readme = (ROOT / "README.md").read_text()
    for name in names:
        assert f'"{name}"' in source, f"{name} is not read by the studio"
        assert f"`{name}`" in readme, f"{name} is not in the README's configuration table"
