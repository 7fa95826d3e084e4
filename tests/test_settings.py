"""dctqa.settings: every DCTQA_* variable is read and checked in one place; garbage is a ConfigError."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dctqa import settings
from dctqa.ops import tuning
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


def test_configuration_doc_lists_every_variable():
    """docs/configuration.md (generated from settings.ENV) lists every run-time variable, and
    the docs name the build-time ones of setup.py."""
    doc = (REPO / "docs" / "configuration.md").read_text()
    for name in settings.ENV:
        assert f"| `{name}` |" in doc, name
    docs = "".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    for name in ("DCTQA_NO_CUDA", "DCTQA_NO_EXT", "DCTQA_ALLOW_TOOLCHAIN_MISMATCH"):
        assert f"`{name}" in docs, name


def _run(code: str, env: dict) -> str:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.parametrize("value", ["0", "0.5", " 3 ", "1024"])
def test_cpp_spectra_cache_bound_is_the_setting(value):
    """DCTQA_SPECTRA_CACHE_MB, read once by dctqa.settings, is the bound of the one spectra cache
    (handed to the extension when it loads)."""
    if tuning.spectra_cache_info() is None:
        pytest.skip("the compiled extension is not built (the cache lives in it)")
    code = ("from dctqa import settings; from dctqa.ops import tuning; import json; "
            "print(json.dumps([tuning.spectra_cache_info()['max_bytes'], "
            "settings.kernel_settings()['spectra_cache_bytes']]))")
    cpp, py = json.loads(_run(code, {"DCTQA_SPECTRA_CACHE_MB": value}))
    assert cpp == py == int(float(value) * (1 << 20))


@pytest.mark.parametrize("name,value", [("DCTQA_SPECTRA_CACHE_MB", "-1"), ("DCTQA_SPECTRA_CACHE_MB", "lots"),
                                        ("DCTQA_FULL_SPECTRA", "maybe"), ("DCTQA_CPU_CHUNK_MB", "0"),
                                        ("DCTQA_CUDA_WORKSPACE_MB", "1.5")])
def test_op_variables_are_checked_before_the_op(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    try:
        with pytest.raises(ConfigError, match=name):
            settings.check_op_env()
        with pytest.raises(ConfigError, match=name):
            settings.kernel_settings()  # the failed read is not kept: read (and refused) again
    finally:
        monkeypatch.delenv(name)
        settings.reload()


def test_kernel_settings_read_once_and_reload_hands_them_over(monkeypatch):
    """The kernel variables are read once; settings.reload() reads them again and the
    extension gets the new values in one call (tuning.config() shows them)."""
    base = settings.kernel_settings()
    monkeypatch.setenv("DCTQA_CPU_CHUNK_MB", "3")
    monkeypatch.setenv("DCTQA_FULL_SPECTRA", "off")
    try:
        assert settings.kernel_settings() == base  # not read again by itself
        new = settings.reload()
        assert new["cpu_chunk_bytes"] == 3 << 20 and new["full_spectra"] is False
        cfg = tuning.config()
        if cfg is not None:
            assert cfg["cpu_chunk_bytes"] == 3 << 20 and cfg["full_spectra"] is False
    finally:
        monkeypatch.delenv("DCTQA_CPU_CHUNK_MB")
        monkeypatch.delenv("DCTQA_FULL_SPECTRA")
        assert settings.reload()["cpu_chunk_bytes"] == 64 << 20


def test_bad_variable_is_a_config_error_on_the_first_op_call():
    """A malformed kernel variable does not stop the import or the extension from loading;
    the first op call raises ConfigError naming it (subprocess: a fresh read)."""
    code = ("import torch\nfrom dctqa import ops\nfrom dctqa.errors import ConfigError\n"
            "print('AVAILABLE', ops.available()['torch'])\n"
            "co = torch.ones(1, 3, 8, 8)\n"
            "try:\n    ops.spectral_qk(co, co, torch.ones(2, 3, 2, 2), 0.01)\n"
            "except ConfigError as e:\n    print('CONFIG', e)\n")
    out = _run(code, {"DCTQA_CPU_CHUNK_MB": "garbage", "DCTQA_DISABLE_OPS": "0"})
    assert "AVAILABLE True" in out
    assert "CONFIG environment variable DCTQA_CPU_CHUNK_MB='garbage'" in out


def test_bad_variable_is_a_config_error_on_the_torch_path_too():
    """DCTQA_DISABLE_OPS=1 does not make a malformed kernel variable pass unnoticed."""
    code = ("import torch\nfrom dctqa import ops\nfrom dctqa.errors import ConfigError\n"
            "a = torch.rand(1, 2, 10)\n"
            "try:\n    ops.ratio_qk(a, a, 0.01)\n"
            "except ConfigError as e:\n    print('CONFIG', e)\n")
    out = _run(code, {"DCTQA_SPECTRA_CACHE_MB": "lots", "DCTQA_DISABLE_OPS": "1"})
    assert "CONFIG environment variable DCTQA_SPECTRA_CACHE_MB='lots'" in out


def test_extension_reads_no_environment():
    """The C++ side parses no DCTQA_* variable: a direct op call with garbage in the
    environment runs (with the settings handed over, here the defaults)."""
    if tuning.spectra_cache_info() is None:
        pytest.skip("the compiled extension is not built")
    code = ("import torch, dctqa._C\nco = torch.ones(1, 3, 8, 8)\n"
            "print('Q', torch.ops.dctqa.spectral_qk(co, co, torch.ones(2, 3, 2, 2), 0.01).tolist())\n"
            "print('CFG', dctqa._C.config()['cpu_chunk_bytes'])\n")
    out = _run(code, {"DCTQA_CPU_CHUNK_MB": "garbage", "DCTQA_SPECTRA_CACHE_MB": "lots",
                      "DCTQA_FULL_SPECTRA": "maybe", "DCTQA_CUDA_WORKSPACE_MB": "x"})
    assert "Q [[1.0, 1.0]]" in out and f"CFG {64 << 20}" in out
