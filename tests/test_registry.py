"""dctqa.registry: the one metric table (facts, names, lazy entries)."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

import dctqa
from dctqa import registry
from dctqa.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_table_facts():
    names = [m.name for m in registry.list_metrics()]
    assert names == ["dctqa", "dctqa_feature", "dctqa_pixel", "dctqa_weighted", "dctqa_nr", "psnr", "ssim",
                     "blockiness", "blur", "noise", "contrast"]
    for m in registry.list_metrics():
        assert m.kind in registry.KINDS and isinstance(m.lower_better, bool)
        assert m.range[0] < m.range[1]
    q = registry.metric_info("dctqa_pixel")
    assert q.kind == "FR" and q.lower_better and q.range == (0.0, math.inf)
    assert registry.metric_info("ssim").range == (-1.0, 1.0) and not registry.metric_info("ssim").lower_better
    with pytest.raises(InputError, match="unknown metric 'vmaf'"):
        registry.metric_info("vmaf")


@pytest.mark.parametrize("name", ["dctqa", "dctqa_pixel", "psnr", "noise"])
def test_created_object_agrees_with_its_entry(name):
    # (dctqa_feature needs a detector backbone: test_metric_name_follows_domain covers its name)
    obj = dctqa.create_metric(name, **({"backbone": "pixel"} if name.startswith("dctqa") else {}))
    info = registry.metric_info(name)
    assert obj.name == name and obj.lower_better is info.lower_better


def test_metric_name_follows_domain():
    assert dctqa.Metric("pixel", domain="pixel").name == "dctqa_pixel"
    assert dctqa.Metric("pixel").name == "dctqa"
    assert dctqa.Metric("pixel").params()["metric"] == "dctqa"
    assert set(registry.DCTQA_METRICS) == set(dctqa.constants.DOMAINS)
    for domain, name in registry.DCTQA_METRICS.items():
        assert registry.metric_info(name).defaults == {"domain": domain}


def test_register_lazy_entry_imports_only_on_create(tmp_path, monkeypatch):
    (tmp_path / "fake_wing_for_registry.py").write_text(
        "class Scorer:\n"
        "    lower_better = False\n"
        "    def __init__(self, name='fake_nr', scale=1.0):\n"
        "        self.name, self.scale = name, scale\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        info = registry.register_metric("fake_nr", kind="NR", lower_better=False, description="test",
                                        entry="fake_wing_for_registry:Scorer", defaults={"scale": 2.0})
        assert "fake_wing_for_registry" not in sys.modules
        assert registry.metric_info("fake_nr") is info and "fake_nr" in [m.name for m in registry.list_metrics()]
        obj = dctqa.create_metric("fake_nr")
        assert "fake_wing_for_registry" in sys.modules and obj.scale == 2.0 and obj.name == "fake_nr"
        with pytest.raises(InputError, match="already registered"):
            registry.register_metric("fake_nr", kind="NR", lower_better=False, description="x", entry="a:b")
    finally:
        registry._TABLE.pop("fake_nr", None)
        sys.modules.pop("fake_wing_for_registry", None)


@pytest.mark.parametrize("kwargs,match", [({"kind": "RR"}, "kind"), ({"entry": "no_colon"}, "module:attribute"),
                                          ({"entry": 5}, "entry")])
def test_register_rejects_bad_entries(kwargs, match):
    args = {"kind": "NR", "lower_better": True, "description": "x", "entry": "a:b", **kwargs}
    with pytest.raises(InputError, match=match):
        registry.register_metric("bad_entry", **args)
    assert "bad_entry" not in [m.name for m in registry.list_metrics()]


def test_registry_imports_no_metric_module():
    code = ("import sys, dctqa.registry as r; r.list_metrics(); "
            "print(sorted(m for m in sys.modules if m in ('dctqa.baselines', 'dctqa.metric', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
