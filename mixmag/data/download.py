"""`mixmag data download`: fetch the official archive, verify it, unpack atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from ..errors import MixmagError
from ..fileio import prepare_output
from .scan import _unwrap

# Mendeley Data, "A dataset for microscopic peripheral blood cell images ...", V1.
OFFICIAL_URL = ("https://data.mendeley.com/public-files/datasets/snkd93bnjr/files/"
                "2fc38728-2ae7-4a62-a857-032af82334c3/file_downloaded")
OFFICIAL_IMAGES = 17092


def _fetch(url: str, dest: Path) -> str:
    """Stream ``url`` to ``dest``; return its sha256."""
    from tqdm import tqdm

    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="download") as bar:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
    except OSError as e:
        raise MixmagError(f"could not download {url} ({e}); check the network, or download the "
                          "archive by hand and pass it with --archive FILE") from None
    return h.hexdigest()


def download_pbc(to: str | os.PathLike, url: str = OFFICIAL_URL, archive: str | None = None,
                 sha256: str | None = None, overwrite: bool = False) -> Path:
    """Unpack the PBC archive (downloaded from ``url``, or the local ``archive``) into ``to``.

    Everything happens in a temporary folder beside ``to``; ``to`` appears only when complete.
    """
    to = Path(to)
    prepare_output(to, overwrite, "dataset")
    to.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{to.name}.download-", dir=to.parent))
    try:
        if archive:
            zpath = Path(archive)
            if not zpath.is_file():
                raise MixmagError(f"archive {zpath} does not exist")
            digest = hashlib.sha256(zpath.read_bytes()).hexdigest()
        else:
            zpath = work / "pbc.zip"
            digest = _fetch(url, zpath)
        if sha256 and digest.lower() != sha256.lower():
            raise MixmagError(f"checksum mismatch: archive sha256 is {digest}, expected {sha256}; "
                              "the download is corrupt or not the PBC archive")
        try:
            with zipfile.ZipFile(zpath) as z:
                for name in z.namelist():  # refuse members that would escape the folder
                    if name.startswith("/") or ".." in Path(name).parts:
                        raise MixmagError(f"archive member {name!r} escapes the target folder")
                z.extractall(work / "unpacked")
        except zipfile.BadZipFile:
            raise MixmagError(f"{zpath} is not a zip archive") from None
        root = _unwrap(work / "unpacked")
        if root is None:
            raise MixmagError("the archive holds no PBC class folders")
        if to.exists():
            shutil.rmtree(to)
        os.replace(root, to)
        (to / ".sha256").write_text(digest + "\n")
        return to
    finally:
        shutil.rmtree(work, ignore_errors=True)
