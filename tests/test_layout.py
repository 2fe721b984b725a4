"""The shape of the house: the import contract, the model zoo, and where model paths may appear."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mixmag.zoo import load_zoo

REPO = Path(__file__).resolve().parents[1]


def test_import_contract_holds():
    """Stages import downwards only and no package has an import circle (pyproject.toml's
    [tool.importlinter] contracts, checked by import-linter on the installed source)."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.is_file():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    r = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_zoo_matches_the_tree():
    """Every model the zoo ships is in the tree with its checksum; every folder under models/ is
    a zoo entry; archived entries have left the tree and name the commit that still holds them."""
    zoo = load_zoo(REPO / "models" / "zoo.yaml")
    shipped = {n for n, e in zoo.models.items() if e.status != "archived"}
    for name in shipped:
        assert zoo.models[name].path().is_file()  # path() checks the sha256
    folders = {p.name for p in (REPO / "models").iterdir() if p.is_dir()}
    assert folders == shipped, f"folders without a zoo entry: {sorted(folders - shipped)}"
    for name, e in zoo.models.items():
        if e.status == "archived":
            assert not e.file.exists() and re.fullmatch(r"[0-9a-f]{7,40}", e.commit), name
    for task in ("detect", "classify"):
        assert zoo.default(task).status == "default"
    # 25 MB held the default pair and the single-cell classifier; the `real` pipeline's pair
    # (2026-12-07, for real smears) adds 12.5 MB
    size = sum(p.stat().st_size for p in (REPO / "models").rglob("*") if p.is_file())
    assert size <= 40e6, f"models/ holds {size / 1e6:.1f} MB (target <= 40 MB)"


def test_code_names_zoo_entries_not_paths():
    """Releasing a model is a zoo entry plus its folder: no code, script or test spells a model
    folder's path (they name the entry; mixmag.zoo resolves it)."""
    pattern = re.compile(r"models/(released/)?(detector|classifier)-[a-z0-9-]+")
    offenders = []
    for sub in ("mixmag", "tests", "benchmarks", "tools"):
        for f in (REPO / sub).rglob("*"):
            if f.suffix in (".py", ".sh") and f.is_file() and f != Path(__file__):
                for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                    if pattern.search(line):
                        offenders.append(f"{f.relative_to(REPO)}:{i}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)
