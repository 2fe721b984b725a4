"""The demo sample (datasets/sample) and tools/demo.py's choice of sources.

The sample is checked where it ships (datasets/sample/pbc, no ../shared needed); where it does not,
it is built from the real dataset into a temporary folder with the same script, and where neither
is at hand the sample tests are skipped with the reason.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from mixmag.classes import CLASS_NAMES
from mixmag.errors import MixmagError

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "datasets" / "sample"
MANIFEST = REPO / "datasets" / "pbc-split.csv"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def make_sample():
    return _load("mixmag_make_sample", SAMPLE_DIR / "make_sample.py")


@pytest.fixture(scope="module")
def demo():
    return _load("mixmag_demo", REPO / "tools" / "demo.py")


@pytest.fixture(scope="module")
def sample(make_sample, tmp_path_factory) -> Path:
    """The shipped sample, else one built from the real dataset, else skip."""
    if (SAMPLE_DIR / "pbc-split.csv").is_file() and (SAMPLE_DIR / "pbc").is_dir():
        return SAMPLE_DIR
    from conftest import _real_pbc

    root = _real_pbc()
    if root is None:
        pytest.skip("no shipped sample in datasets/sample/pbc and no real PBC dataset to build one")
    out = tmp_path_factory.mktemp("sample")
    make_sample.make(out, root)
    return out


@pytest.fixture()
def no_dataset(monkeypatch):
    """As on a fresh machine: no $MIXMAG_PBC and nothing at ../shared/data/pbc."""
    monkeypatch.delenv("MIXMAG_PBC", raising=False)
    monkeypatch.setattr("mixmag.data.scan.default_search_paths", lambda: [])


# --- the sample's integrity ---------------------------------------------------------------

def test_sample_is_sound_test_split_and_small(sample, make_sample):
    assert make_sample.check(sample, MANIFEST, min_per_class=8, max_bytes=2_000_000) == []
    import pandas as pd

    m = pd.read_csv(sample / "pbc-split.csv")
    committed = pd.read_csv(MANIFEST).set_index("path")
    assert set(m["split"]) == {"test"}
    assert (committed.loc[m["path"], "split"] == "test").all()
    counts = m["class_name"].value_counts()
    assert set(counts.index) == set(CLASS_NAMES) and counts.min() >= 8, counts.to_dict()
    assert counts.max() <= 10
    total = sum((sample / "pbc" / p).stat().st_size for p in m["path"])
    assert total <= 2_000_000
    assert not [p for p in (sample / "pbc").rglob(".*")]     # no .DS_Store-like junk


def test_sample_choice_is_deterministic_and_test_only(make_sample):
    a = make_sample.choose(MANIFEST, 10, 0)
    assert a == make_sample.choose(MANIFEST, 10, 0)
    assert [r["path"] for r, _ in a] != [r["path"] for r, _ in make_sample.choose(MANIFEST, 10, 1)]
    assert len(a) == 80 and {r["split"] for r, _ in a} == {"test"}
    assert len({r["sha256"] for r, _ in a}) == 80
    lines = set(MANIFEST.read_text().splitlines())
    assert all(line in lines for _, line in a)


def test_check_catches_a_changed_or_stray_file(sample, make_sample, tmp_path):
    import shutil

    bad = tmp_path / "s"
    shutil.copytree(sample / "pbc", bad / "pbc")
    shutil.copy(sample / "pbc-split.csv", bad / "pbc-split.csv")
    first = next((bad / "pbc").rglob("*.jpg"))
    first.write_bytes(first.read_bytes() + b"\0")
    (bad / "pbc" / "neutrophil" / "extra.jpg").write_bytes(b"x")
    problems = make_sample.check(bad, MANIFEST)
    assert any("sha256" in p for p in problems) and any("extra.jpg" in p for p in problems)


def test_readme_states_licence_and_citation():
    text = (SAMPLE_DIR / "README.md").read_text()
    for needle in ("CC BY 4.0", "Acevedo", "Rodellar", "Data in Brief", "105474",
                   "doi:10.1016/j.dib.2020.105474", "doi:10.17632/snkd93bnjr.1",
                   "make_sample.py"):
        assert needle in text, needle


# --- composites from the sample alone ---------------------------------------------------------

def test_generator_builds_composites_from_the_sample_alone(sample, no_dataset, tmp_path):
    from mixmag.synth.export import load_cells
    from mixmag.synth.generate import SynthSettings, load_store, synthesize

    store = load_store(sample / "pbc-split.csv", pbc=sample / "pbc", cache=tmp_path / "cache",
                       splits=("test",), workers=1, progress=False)
    s = SynthSettings(n=2, counts={"test": 2}, splits=("test",), canvas=512, cells=(3, 5), seed=3)
    meta = synthesize(tmp_path / "mix", s, store, workers=1, progress=False)
    assert meta["counts"]["images"] == {"test": 2}
    cells = load_cells(tmp_path / "mix")
    assert len(cells) >= 6 and set(cells["split"]) == {"test"}
    shipped = set((sample / "pbc-split.csv").read_text().splitlines()[1:])
    shipped = {line.split(",")[0] for line in shipped}
    assert set(cells["source"]) <= shipped
    assert all((tmp_path / "mix" / p).is_file() for p in cells["image"].unique())


# --- tools/demo.py ----------------------------------------------------------------------------

def test_demo_falls_back_to_the_sample_only_when_no_dataset_is_named(demo, no_dataset, tmp_path,
                                                                    monkeypatch):
    fake = tmp_path / "sample"
    (fake / "pbc").mkdir(parents=True)
    (fake / "pbc-split.csv").write_text("path,class_name,class_id,split,sha256,width,height\n"
                                        "a/b.jpg,ig,3,test,0,1,1\n")
    args, note = demo.sources(None, sample=fake)
    assert args == ["--split", str(fake / "pbc-split.csv"), "--pbc", str(fake / "pbc")]
    assert note and "sample" in note and "\n" not in note
    with pytest.raises(MixmagError, match="no demo sample"):
        demo.sources(None, sample=tmp_path / "none")
    with pytest.raises(MixmagError):                          # a named dataset must exist
        demo.sources(str(tmp_path / "nowhere"), sample=fake)
    monkeypatch.setenv("MIXMAG_PBC", str(tmp_path / "nowhere"))
    with pytest.raises(MixmagError):
        demo.sources(None, sample=fake)


def test_demo_uses_the_full_dataset_when_present(demo, drawn_pbc, monkeypatch):
    monkeypatch.setenv("MIXMAG_PBC", str(drawn_pbc))
    args, note = demo.sources(None)
    assert note is None and args == ["--split", str(MANIFEST)]
    args, note = demo.sources(str(drawn_pbc))
    assert note is None and args == ["--split", str(MANIFEST), "--pbc", str(drawn_pbc)]


def test_demo_leaves_model_choice_to_predict():
    tree = ast.parse((REPO / "tools" / "demo.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("mixmag.detect") for m in imported), imported
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert "--detector" not in strings and "--classifier" not in strings


@pytest.mark.slow
def test_demo_runs_to_a_report_on_the_sample(demo, sample, no_dataset, tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setattr(demo, "SAMPLE", sample)
    monkeypatch.setattr(sys, "argv", ["demo.py", "--out", str(tmp_path / "demo"), "--n", "4"])
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "using the shipped sample" in out and "headline: macro_f1" in out
    metrics = json.loads((tmp_path / "demo" / "report" / "metrics.json").read_text())
    assert metrics["headline"]["macro_f1"] > 0.5
    assert (tmp_path / "demo" / "report" / "report.html").is_file()
    # the real-field part: the sample's whole PBC images, red cells counted, each image's own
    # cell labelled as its folder (80 of 80 with the default pair of 2026-12-08)
    import re

    m = re.search(r"real fields: (\d+) whole PBC test images .*: (\d+) cells of the eight and (\d+) "
                  r"red cells; the folder's own cell labelled as its folder in (\d+) of (\d+)", out)
    assert m, out
    n, eight, red, right, n2 = map(int, m.groups())
    assert n == n2 >= 64 and eight >= n and red > 5 * n and right >= 0.9 * n
