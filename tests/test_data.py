"""PBC data layer: find, check, split, download; on drawn images and, where present, the real data."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from mixmag.classes import CLASS_NAMES
from mixmag.cli import main
from mixmag.data.check import check_dataset
from mixmag.data.download import download_pbc
from mixmag.data.scan import find_pbc_root
from mixmag.data.split import load_manifest, make_split, manifest_hash
from mixmag.errors import MixmagError


def test_check_reports_junk_and_duplicates(drawn_pbc, tmp_path):
    root = tmp_path / "pbc"
    import shutil

    shutil.copytree(drawn_pbc, root)
    dup_src = next((root / "ig").iterdir())
    (root / "ig" / "IG_dup.jpg").write_bytes(dup_src.read_bytes())
    (root / "monocyte" / "MO_empty.jpg").write_bytes(b"")
    rep = check_dataset(root, workers=1, progress=False)
    bad = dict(zip(rep.unreadable["path"], rep.unreadable["error"]))
    assert bad == {"neutrophil/.DS_169665.jpg": "macOS .DS_Store file",
                   "monocyte/MO_empty.jpg": "empty file"}
    assert [sorted(g) for g in rep.duplicate_groups] == [sorted([f"ig/{dup_src.name}", "ig/IG_dup.jpg"])]
    assert rep.usable
    assert rep.counts()["images"].to_dict() == {c: (13 if c == "ig" else 12) for c in CLASS_NAMES}


def test_check_cli_exit_status(drawn_pbc, tmp_path, capsys):
    assert main(["data", "check", "--pbc", str(drawn_pbc), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert ".DS_169665.jpg: macOS .DS_Store file" in out and "usable: yes" in out
    empty = tmp_path / "empty"
    (empty / "basophil").mkdir(parents=True)
    (empty / "ig").mkdir()
    assert main(["data", "check", "--pbc", str(empty), "--workers", "1"]) == 1


def test_missing_dataset_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MIXMAG_PBC", raising=False)
    assert main(["data", "check", "--pbc", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err and "mixmag data download" in err
    with pytest.raises(MixmagError, match="none of the PBC class folders"):
        find_pbc_root(tmp_path)


def test_split_is_stratified_seeded_and_groups_duplicates(drawn_pbc, tmp_path):
    rep = check_dataset(drawn_pbc, workers=1, progress=False)
    files = rep.files.copy()
    # plant a duplicate pair: same content hash must land in one split
    files.loc[files.index[1], "sha256"] = files.loc[files.index[0], "sha256"]
    a = make_split(files, seed=3)
    b = make_split(files, seed=3)
    c = make_split(files, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert manifest_hash(a) != manifest_hash(c)
    assert ".DS_169665.jpg" not in " ".join(a["path"])
    assert a.groupby("sha256")["split"].nunique().max() == 1
    per = a.groupby(["class_name", "split"]).size().unstack(fill_value=0)
    assert (per["test"] >= 1).all() and (per["val"] >= 1).all() and (per["train"] >= 7).all()


def test_split_cli_writes_manifest_and_refuses_overwrite(drawn_pbc, tmp_path, capsys):
    out = tmp_path / "split.csv"
    args = ["split", "--pbc", str(drawn_pbc), "--out", str(out), "--workers", "1"]
    assert main(args) == 0
    before = out.read_bytes()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    m = load_manifest(out, verify="all")
    assert len(m) == 96 and set(m["split"]) == {"train", "val", "test"}
    assert m.attrs["manifest_hash"] == manifest_hash(m)


def test_manifest_from_another_dataset_is_refused(drawn_manifest, tmp_path):
    import shutil

    from tests.drawn import make_drawn_pbc

    other = make_drawn_pbc(tmp_path / "other", seed=99)  # same names, different pixels
    with pytest.raises(MixmagError, match="hash mismatch"):
        load_manifest(drawn_manifest, pbc=other, verify="all")
    shutil.rmtree(other / "platelet")
    with pytest.raises(MixmagError, match="missing under"):
        load_manifest(drawn_manifest, pbc=other, verify="exists")


def test_bad_fractions_refused(drawn_pbc):
    rep = check_dataset(drawn_pbc, workers=1, progress=False)
    with pytest.raises(MixmagError, match="summing to 1"):
        make_split(rep.files, fractions=(0.5, 0.5, 0.5))


def _zip_of(folder: Path, prefix: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, f"{prefix}/{p.relative_to(folder)}")
    return buf.getvalue()


def test_download_from_local_archive_verifies_and_unpacks(drawn_pbc, tmp_path):
    data = _zip_of(drawn_pbc, "PBC_dataset_normal_DIB")
    archive = tmp_path / "pbc.zip"
    archive.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    # through a file:// URL, like the real download path
    out = download_pbc(tmp_path / "got", url=archive.as_uri(), sha256=digest)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(CLASS_NAMES)
    assert (out / "basophil" / "BA_100000.jpg").read_bytes() == (drawn_pbc / "basophil" / "BA_100000.jpg").read_bytes()
    with pytest.raises(MixmagError, match="checksum mismatch"):
        download_pbc(tmp_path / "bad", archive=str(archive), sha256="0" * 64)
    assert not (tmp_path / "bad").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    with pytest.raises(MixmagError, match="already exists"):
        download_pbc(tmp_path / "got", archive=str(archive))


def test_download_refuses_escaping_members(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../evil.txt", "x")
    (tmp_path / "evil.zip").write_bytes(buf.getvalue())
    with pytest.raises(MixmagError, match="escapes"):
        download_pbc(tmp_path / "out", archive=str(tmp_path / "evil.zip"))
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.data
def test_real_pbc_check(pbc_root):
    rep = check_dataset(pbc_root, progress=False)
    assert rep.usable
    bad = rep.unreadable
    assert "neutrophil/.DS_169665.jpg" in set(bad["path"])
    counts = rep.counts()["images"]
    assert (counts > 800).all()
    ok = rep.files[rep.files["ok"]]
    assert ok["width"].between(359, 366).all() and ok["height"].between(360, 369).all()


@pytest.mark.data
def test_committed_manifest_matches_real_data(pbc_root):
    repo = Path(__file__).resolve().parents[1]
    m = load_manifest(repo / "datasets" / "pbc-split.csv", pbc=pbc_root, verify="sample")
    assert m.groupby("sha256")["split"].nunique().max() == 1
    share = m["split"].value_counts(normalize=True)
    assert abs(share["train"] - 0.70) < 0.01 and abs(share["test"] - 0.15) < 0.01
