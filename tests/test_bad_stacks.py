"""Bad input exits 2 with a message naming the file, the key path and the value; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from moe_ep import cli

FIXTURES = Path(__file__).parent / "fixtures" / "bad"
EXPECTED: dict[str, str] = yaml.safe_load((FIXTURES / "expected.yaml").read_text())


def test_there_are_at_least_twenty_distinct_bad_stacks():
    files = sorted(FIXTURES.glob("Pulumi.*.yaml"))
    assert len(files) >= 20
    assert len({f.read_bytes() for f in files}) == len(files)
    assert set(EXPECTED) == {f.name for f in files}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_stack_exits_2_naming_file_and_key(name, capsys, tmp_path):
    path = FIXTURES / name
    out = tmp_path / "render"
    assert cli.main(["render", "--config", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert not out.exists(), "nothing may be written for bad input"
    assert str(path) in captured.err
    assert EXPECTED[name] in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert cli.main(["preview", "--config", str(path), "--json"]) == 2
    assert capsys.readouterr().out == ""


def test_unreadable_file(tmp_path, capsys):
    missing = tmp_path / "Pulumi.gone.yaml"
    assert cli.main(["preview", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "readable" in err


def test_a_directory_is_not_a_stack_file(tmp_path, capsys):
    assert cli.main(["preview", "--config", str(tmp_path)]) == 2
    assert "Traceback" not in capsys.readouterr().err
