"""dctqa.settings: every DCTQA_* variable is read and checked in one place; garbage is a ConfigError."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dctqa import settings
from dctqa.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", [n for n, v in settings.ENV.items() if v.kind == "number"])
@pytest.mark.parametrize("garbage", ["lots", "1e400", "-5", "12abc", "nan", "0x10"])
def test_numeric_garbage_is_config_error(monkeypatch, name, garbage):
    monkeypatch.setenv(name, garbage)
    with pytest.raises(ConfigError, match=name):
        settings.env_number(name)


@pytest.mark.parametrize("name", [n for n, v in settings.ENV.items() if v.kind == "number"])
def test_numeric_default_when_unset_or_empty(monkeypatch, name):
    monkeypatch.delenv(name, raising=False)
    assert settings.env_number(name) == int(float(settings.ENV[name].default))
    monkeypatch.setenv(name, "  ")
    assert settings.env_number(name) == int(float(settings.ENV[name].default))


def test_accessors(monkeypatch):
    monkeypatch.setenv("DCTQA_MAX_PIXELS", " 1000 ")
    assert settings.max_pixels() == 1000
    monkeypatch.setenv("DCTQA_SPECTRA_CACHE_MB", "0.5")
    assert settings.spectra_cache_bytes() == 1 << 19
    monkeypatch.setenv("DCTQA_MAX_PIXELS", "0")
    with pytest.raises(ConfigError, match="out of range"):
        settings.max_pixels()


@pytest.mark.parametrize("value,expected", [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
                                            ("", False), ("0", False), ("False", False), ("no", False),
                                            ("off", False)])
def test_flag_values(monkeypatch, value, expected):
    monkeypatch.setenv("DCTQA_DISABLE_OPS", value)
    assert settings.ops_disabled() is expected


@pytest.mark.parametrize("garbage", ["2", "maybe", "enable", "-1"])
def test_flag_garbage_is_config_error(monkeypatch, garbage):
    monkeypatch.setenv("DCTQA_DISABLE_OPS", garbage)
    with pytest.raises(ConfigError, match="DCTQA_DISABLE_OPS.*on/off"):
        settings.ops_disabled()


def test_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("DCTQA_SHARED", str(tmp_path))
    assert settings.shared_dir() == tmp_path
    monkeypatch.delenv("DCTQA_SHARED")
    assert settings.shared_dir() == REPO.parent / "shared"
    monkeypatch.setenv("DCTQA_CACHE_DIR", str(tmp_path / "c"))
    assert settings.cache_root() == tmp_path / "c"
    monkeypatch.delenv("DCTQA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.cache_root() == tmp_path / "xdg" / "dctqa"


@pytest.mark.parametrize("name", ["DCTQA_SHARED", "DCTQA_CACHE_DIR"])
def test_path_garbage_is_config_error(monkeypatch, tmp_path, name):
    f = tmp_path / "a_file"
    f.write_text("x")
    monkeypatch.setenv(name, str(f))
    with pytest.raises(ConfigError, match=f"{name}.*names a file"):
        settings.shared_dir() if name == "DCTQA_SHARED" else settings.cache_root()


def test_every_python_reader_goes_through_settings():
    """No module outside settings.py (package or benchmarks) reads a DCTQA_* variable from
    os.environ itself."""
    offenders = []
    for p in sorted([*(REPO / "dctqa").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]):
        rel = p.relative_to(REPO).as_posix()
        if rel == "dctqa/settings.py":
            continue
        if re.search(r"(environ|getenv)[^\n]*DCTQA_", p.read_text()):
            offenders.append(rel)
    assert offenders == []


def test_readme_table_lists_every_variable():
    readme = (REPO / "README.md").read_text()
    for name in settings.ENV:
        assert f"| `{name}` |" in readme, name
    for name in ("DCTQA_NO_CUDA", "DCTQA_NO_EXT", "DCTQA_ALLOW_TOOLCHAIN_MISMATCH"):
        assert f"| `{name}` |" in readme, name


@pytest.mark.parametrize("value", ["0", "0.5", " 3 ", "1024"])
def test_cpp_spectra_cache_bound_agrees_with_python(value):
    """DCTQA_SPECTRA_CACHE_MB means the same bytes to the C++ CPU ops' cache as to the torch path's."""
    import subprocess
    import sys

    from dctqa import ops

    if ops.spectra_cache_info() is None:
        pytest.skip("the compiled extension is not built (the torch path alone reads the variable)")
    code = ("from dctqa import ops, settings; import json; "
            "print(json.dumps([ops.spectra_cache_info()['max_bytes'], settings.spectra_cache_bytes()]))")
    env = {**os.environ, "DCTQA_SPECTRA_CACHE_MB": value}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    cpp, py = json.loads(out.stdout)
    assert cpp == py == int(float(value) * (1 << 20))


@pytest.mark.parametrize("name,value", [("DCTQA_SPECTRA_CACHE_MB", "-1"), ("DCTQA_SPECTRA_CACHE_MB", "lots"),
                                        ("DCTQA_FULL_SPECTRA", "maybe")])
def test_op_variables_are_checked_before_the_op(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        settings.check_op_env()
