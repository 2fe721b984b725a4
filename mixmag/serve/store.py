"""What `mixmag serve` keeps: uploads on disk, batches, images, cells and corrections in SQLite.

Layout under the server's folder (``--data``)::

    serve.sqlite                  batches, images, cells (one row a cell; corrections in place)
    batches/<id>/images/...       the uploaded images, names made safe
    batches/<id>/predict/         what `mixmag predict` wrote for them (cells.csv, counts.csv, ...)
    batches/<id>/exports/         corrected labels and the report, made on request

A correction never loses what the model said: a changed class keeps the model's in
``original_class``, a deleted box is flagged, an added one has ``source = 'added'``. Every write
is one transaction (``with self.db``), so a crash leaves each batch as it was before or after an
edit, never between.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, RBC
from ..errors import MixmagError
from ..fileio import atomic_path, write_bytes
from ..images import ImageError, is_image_name, read_image

ALL_CLASSES = (*CLASS_NAMES, RBC)
# a zip may not unpack to more than this many bytes a compressed byte (a zip bomb's ratio is far
# higher; JPEGs and PNGs barely compress) nor hold more than this many entries
MAX_ZIP_RATIO = 50
MAX_ZIP_ENTRIES = 20_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created TEXT NOT NULL,
    status TEXT NOT NULL,            -- queued, running, done, failed
    error TEXT, n_images INTEGER NOT NULL, n_done INTEGER NOT NULL DEFAULT 0,
    red INTEGER                      -- 1: the detector knows red cells
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, batch_id TEXT NOT NULL REFERENCES batches(id),
    name TEXT NOT NULL,              -- relative to the batch's images/ folder, as cells.csv has it
    upload_name TEXT NOT NULL,       -- as the user's file (or zip entry) was called
    width INTEGER, height INTEGER, status TEXT NOT NULL, error TEXT,
    UNIQUE (batch_id, name)
);
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, image_id INTEGER NOT NULL REFERENCES images(id),
    x1 REAL, y1 REAL, x2 REAL, y2 REAL, class_name TEXT NOT NULL,
    score REAL, det_conf REAL, class_conf REAL, probs TEXT, magnification_est REAL,
    source TEXT NOT NULL DEFAULT 'model',   -- model, added
    original_class TEXT,                    -- the model's class, once a reviewer changed it
    deleted INTEGER NOT NULL DEFAULT 0, edited TEXT
);
CREATE INDEX IF NOT EXISTS cells_by_image ON cells (image_id, deleted);
"""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def safe_name(name: str) -> str:
    """A file name or relative path from a user, made safe to write under a folder: each part
    NFC-normalised, stripped of anything but letters, digits and ``._- ``; None if the path would
    leave the folder (absolute, ``..``, a drive)."""
    raw = name.replace("\\", "/")
    parts = PurePosixPath(raw).parts
    if raw.startswith("/") or any(p == ".." for p in parts) or (parts and ":" in parts[0]):
        return ""
    clean = []
    for p in parts:
        p = unicodedata.normalize("NFC", p)
        p = re.sub(r"[^\w.\- ]", "_", p).strip(" .")
        if p:  # at most 120 bytes a part: file systems count bytes (255), not characters
            clean.append(p.encode("utf-8")[:120].decode("utf-8", "ignore"))
    return "/".join(clean)


@dataclass
class Rejected:
    file: str
    error: str

    def as_dict(self) -> dict:
        return {"file": self.file, "error": self.error}


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()  # one writer at a time: the job thread and the requests
        self.db = sqlite3.connect(self.root / "serve.sqlite", check_same_thread=False,
                                  isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)

    # ------------------------------------------------------------ transactions
    def tx(self):
        """``with store.tx() as db:`` one transaction under the store's lock."""
        return _Tx(self)

    def query(self, sql: str, args=()) -> list[sqlite3.Row]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def batch_dir(self, bid: str) -> Path:
        return self.root / "batches" / bid

    # ------------------------------------------------------------ uploads
    def create_batch(self, files: list[tuple[str, Path]], name: str = "",
                     max_bytes: int = 2 << 30) -> tuple[dict | None, list[Rejected]]:
        """A batch from uploaded files ((file name, temporary path) each: images or zips of
        them). Each image is checked as predict reads it (decodable, within the pixel limit);
        what cannot be used is returned as rejected, with why. No batch if nothing is usable."""
        bid = secrets.token_hex(4)
        folder = self.batch_dir(bid) / "images"
        folder.mkdir(parents=True)
        kept: list[tuple[str, str]] = []  # (name under images/, upload name)
        rejected: list[Rejected] = []
        used: set[str] = set()
        budget = [max_bytes]  # bytes the upload may still write: files and zips' contents alike

        def keep(upload_name: str, data_path: Path | None = None, data: bytes | None = None):
            size = len(data) if data is not None else Path(data_path).stat().st_size
            if size > budget[0]:
                rejected.append(Rejected(upload_name, f"the upload is above the limit of "
                                                      f"{max_bytes >> 20} MB"))
                return
            budget[0] -= size
            rel = safe_name(upload_name)
            if not rel:
                rejected.append(Rejected(upload_name, "a path that leaves the upload folder"))
                return
            if not is_image_name(rel):
                rejected.append(Rejected(upload_name, "not an image (jpg, png, tif, bmp, webp) "
                                                      "or a zip of images"))
                return
            rel = _unique(rel, used)
            dest = folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if data is not None:
                write_bytes(dest, data)
            else:
                import shutil

                with atomic_path(dest) as tmp:
                    shutil.copyfile(data_path, tmp)
            from ..pipeline.slide import open_slide

            try:
                slide = open_slide(dest)
                if slide is not None:
                    slide.close()
                    raise ImageError(f"{dest}: a whole slide; predict it with `mixmag predict` "
                                     "(the page takes images up to the pixel limit)")
                read_image(dest)  # the checks predict makes: a broken file is named now
            except ImageError as e:
                dest.unlink()
                rejected.append(Rejected(upload_name, str(e).replace(str(dest), upload_name)))
                return
            used.add(rel)
            kept.append((rel, upload_name))

        try:
            for upload_name, path in files:
                if upload_name.lower().endswith(".zip"):
                    self._unzip(upload_name, Path(path), keep, rejected, budget[0])
                else:
                    keep(upload_name, data_path=path)
        except BaseException:  # a disk error: no half-made batch folder is left behind
            _rmtree(self.batch_dir(bid))
            raise
        if not kept:
            _rmtree(self.batch_dir(bid))
            return None, rejected
        with self.tx() as db:
            db.execute("INSERT INTO batches (id, name, created, status, n_images) VALUES "
                       "(?, ?, ?, 'queued', ?)", (bid, name.strip()[:200] or f"batch {bid}", now(),
                                                  len(kept)))
            db.executemany("INSERT INTO images (batch_id, name, upload_name, status) VALUES "
                           "(?, ?, ?, 'queued')", [(bid, rel, up) for rel, up in kept])
        return self.batch(bid), rejected

    @staticmethod
    def _unzip(upload_name, path: Path, keep, rejected, budget: int) -> None:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError):
            rejected.append(Rejected(upload_name, "not a readable zip file"))
            return
        with zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) > MAX_ZIP_ENTRIES:
                rejected.append(Rejected(upload_name, f"{len(infos)} entries, above the limit of "
                                                      f"{MAX_ZIP_ENTRIES}"))
                return
            unpacked = sum(i.file_size for i in infos)
            packed = max(1, sum(i.compress_size for i in infos))
            # what a zip declares bounds what it unpacks to (zipfile reads no further); the
            # upload's budget bounds their sum, the ratio a single bomb beyond a small allowance
            if unpacked > budget or unpacked > MAX_ZIP_RATIO * packed + (64 << 20):
                rejected.append(Rejected(upload_name, f"unpacks to {unpacked / 2 ** 20:.1f} MB: "
                                                      "above the upload limit (or a zip bomb)"))
                return
            for info in infos:
                entry = f"{upload_name}:{info.filename}"
                base = PurePosixPath(info.filename.replace("\\", "/"))
                if base.name.startswith(".") or "__MACOSX" in base.parts:
                    continue  # the archiver's own files (.DS_Store, resource forks)
                if not safe_name(info.filename):
                    rejected.append(Rejected(entry, "a path that leaves the upload folder"))
                    continue
                if not is_image_name(info.filename):
                    rejected.append(Rejected(entry, "not an image"))
                    continue
                try:
                    data = zf.read(info)
                except Exception as e:  # noqa: BLE001 - zlib.error, bad CRC, encryption: one line
                    rejected.append(Rejected(entry, f"cannot be read from the zip "
                                                    f"({type(e).__name__})"))
                    continue
                keep(info.filename, data=data)

    # ------------------------------------------------------------ jobs
    def next_queued(self) -> str | None:
        rows = self.query("SELECT id FROM batches WHERE status = 'queued' ORDER BY created, rowid "
                          "LIMIT 1")
        return rows[0]["id"] if rows else None

    def requeue_interrupted(self) -> int:
        """Batches a stopped server left running start again from the beginning."""
        with self.tx() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM batches WHERE status = 'running'")]
            for bid in ids:
                db.execute("DELETE FROM cells WHERE batch_id = ? AND source = 'model'", (bid,))
                db.execute("UPDATE images SET status = 'queued', error = NULL WHERE batch_id = ?",
                           (bid,))
                db.execute("UPDATE batches SET status = 'queued', n_done = 0 WHERE id = ?", (bid,))
        return len(ids)

    def set_status(self, bid: str, status: str, error: str | None = None) -> None:
        with self.tx() as db:
            db.execute("UPDATE batches SET status = ?, error = ? WHERE id = ?", (status, error, bid))

    def image_done(self, bid: str, row: dict) -> None:
        """predict's record of one image: its size, or why it failed; the batch's progress."""
        with self.tx() as db:
            db.execute("UPDATE images SET width = ?, height = ?, status = ?, error = ? "
                       "WHERE batch_id = ? AND name = ?",
                       (row.get("width"), row.get("height"), "failed" if row.get("error") else "done",
                        row.get("error") or None, bid, row["image"]))
            db.execute("UPDATE batches SET n_done = n_done + 1 WHERE id = ?", (bid,))

    def load_predictions(self, bid: str, cells: pd.DataFrame, red: bool) -> None:
        """predict's cells.csv into the cells table, in its order, and the batch done."""
        ids = {r["name"]: r["id"] for r in self.query(
            "SELECT id, name FROM images WHERE batch_id = ?", (bid,))}
        rows = []
        for r in cells.itertuples(index=False):
            d = r._asdict()
            probs = ({c: round(float(d[f"p_{c}"]), 5) for c in CLASS_NAMES}
                     if r.class_name != RBC else {})
            mag = d["magnification_est"]
            rows.append((bid, ids[r.image], float(r.x1), float(r.y1), float(r.x2), float(r.y2),
                         r.class_name, float(r.score), float(r.det_conf), float(r.class_conf),
                         json.dumps(probs), None if pd.isna(mag) else float(mag)))
        with self.tx() as db:
            db.execute("DELETE FROM cells WHERE batch_id = ? AND source = 'model'", (bid,))
            db.executemany("INSERT INTO cells (batch_id, image_id, x1, y1, x2, y2, class_name, "
                           "score, det_conf, class_conf, probs, magnification_est) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            # done in the same transaction: a running batch never holds model cells, so a
            # restart that queues it again cannot drop a reviewer's corrections
            db.execute("UPDATE batches SET red = ?, status = 'done', error = NULL WHERE id = ?",
                       (int(red), bid))

    # ------------------------------------------------------------ reading
    def batches(self) -> list[dict]:
        return [self.batch(r["id"]) for r in
                self.query("SELECT id FROM batches ORDER BY created DESC, rowid DESC")]

    def batch(self, bid: str) -> dict:
        rows = self.query("SELECT * FROM batches WHERE id = ?", (bid,))
        if not rows:
            raise NotFound(f"no batch {bid}")
        b = dict(rows[0])
        counts = self._counts("batch_id = ?", (bid,), bool(b["red"]))
        n_corr = self.query(
            "SELECT COUNT(*) AS n FROM cells WHERE batch_id = ? AND (source = 'added' OR deleted = 1 "
            "OR original_class IS NOT NULL)", (bid,))[0]["n"]
        return {"id": b["id"], "name": b["name"], "created": b["created"], "status": b["status"],
                "error": b["error"], "n_images": b["n_images"], "n_done": b["n_done"],
                "n_cells": sum(counts.get(c, 0) for c in CLASS_NAMES),
                "n_red_cells": counts.get(RBC) if b["red"] else None, "counts": counts,
                "corrections": n_corr}

    def _counts(self, where: str, args, red: bool) -> dict:
        rows = self.query(f"SELECT class_name, COUNT(*) AS n FROM cells WHERE {where} AND "
                          "deleted = 0 GROUP BY class_name", args)
        got = {r["class_name"]: r["n"] for r in rows}
        classes = ALL_CLASSES if red or RBC in got else CLASS_NAMES
        return {c: int(got.get(c, 0)) for c in classes}

    def images(self, bid: str) -> list[dict]:
        red = bool(self.batch_row(bid)["red"])
        out = []
        for r in self.query("SELECT * FROM images WHERE batch_id = ? ORDER BY id", (bid,)):
            counts = self._counts("image_id = ?", (r["id"],), red)
            out.append({"id": r["id"], "name": r["name"], "upload_name": r["upload_name"],
                        "width": r["width"], "height": r["height"], "status": r["status"],
                        "error": r["error"],
                        "n_cells": sum(counts.get(c, 0) for c in CLASS_NAMES),
                        "n_red_cells": counts.get(RBC) if red else None, "counts": counts})
        return out

    def batch_row(self, bid: str) -> sqlite3.Row:
        rows = self.query("SELECT * FROM batches WHERE id = ?", (bid,))
        if not rows:
            raise NotFound(f"no batch {bid}")
        return rows[0]

    def image_row(self, bid: str, iid: int) -> sqlite3.Row:
        rows = self.query("SELECT * FROM images WHERE batch_id = ? AND id = ?", (bid, iid))
        if not rows:
            raise NotFound(f"no image {iid} in batch {bid}")
        return rows[0]

    def image_path(self, bid: str, iid: int) -> Path:
        return self.batch_dir(bid) / "images" / self.image_row(bid, iid)["name"]

    def cells(self, bid: str, iid: int) -> list[dict]:
        self.image_row(bid, iid)
        return [cell_dict(r) for r in self.query(
            "SELECT * FROM cells WHERE image_id = ? AND deleted = 0 ORDER BY id", (iid,))]

    def cell_row(self, cid: int) -> sqlite3.Row:
        rows = self.query("SELECT * FROM cells WHERE id = ?", (cid,))
        if not rows or rows[0]["deleted"]:
            raise NotFound(f"no cell {cid}")
        return rows[0]

    # ------------------------------------------------------------ corrections
    def set_class(self, cid: int, class_name: str) -> dict:
        _check_class(class_name)
        with self.tx() as db:
            r = db.execute("SELECT * FROM cells WHERE id = ? AND deleted = 0", (cid,)).fetchone()
            if r is None:
                raise NotFound(f"no cell {cid}")
            original = r["original_class"]
            if r["source"] == "model" and original is None and class_name != r["class_name"]:
                original = r["class_name"]
            if original == class_name:  # set back to the model's class: no correction left
                original = None
            db.execute("UPDATE cells SET class_name = ?, original_class = ?, edited = ? WHERE id = ?",
                       (class_name, original, now(), cid))
        return cell_dict(self.cell_row(cid))

    def delete_cell(self, cid: int) -> None:
        with self.tx() as db:
            r = db.execute("SELECT source FROM cells WHERE id = ? AND deleted = 0", (cid,)).fetchone()
            if r is None:
                raise NotFound(f"no cell {cid}")
            if r["source"] == "added":  # a reviewer's own box: nothing of the model's to keep
                db.execute("DELETE FROM cells WHERE id = ?", (cid,))
            else:
                db.execute("UPDATE cells SET deleted = 1, edited = ? WHERE id = ?", (now(), cid))

    def add_cell(self, bid: str, iid: int, box: tuple[float, float, float, float],
                 class_name: str) -> dict:
        _check_class(class_name)
        img = self.image_row(bid, iid)
        x1, y1, x2, y2 = (float(v) for v in box)
        if not all(np.isfinite([x1, y1, x2, y2])):
            raise BadRequest("the box's corners must be numbers")
        w, h = img["width"] or 0, img["height"] or 0
        x1, x2 = sorted((min(max(x1, 0), w), min(max(x2, 0), w)))
        y1, y2 = sorted((min(max(y1, 0), h), min(max(y2, 0), h)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            raise BadRequest("the box is empty inside the image (at least 2 px a side)")
        with self.tx() as db:
            cur = db.execute("INSERT INTO cells (batch_id, image_id, x1, y1, x2, y2, class_name, "
                             "probs, source, edited) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', 'added', ?)",
                             (bid, iid, x1, y1, x2, y2, class_name, now()))
            cid = cur.lastrowid
        return cell_dict(self.cell_row(cid))

    def labels(self, bid: str) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
        """(images read, their cells as corrected) of a batch: the labels to export."""
        imgs = self.query("SELECT * FROM images WHERE batch_id = ? AND status = 'done' ORDER BY id",
                          (bid,))
        cells = self.query("SELECT * FROM cells WHERE batch_id = ? AND deleted = 0 ORDER BY "
                           "image_id, id", (bid,))
        return imgs, cells


class _Tx:
    def __init__(self, store: Store):
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store.lock.acquire()
        try:
            self.store.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store.lock.release()
            raise
        return self.store.db

    def __exit__(self, kind, value, tb) -> None:
        try:
            self.store.db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.store.lock.release()


class NotFound(MixmagError):
    exit_code = 4


class BadRequest(MixmagError):
    pass


def cell_dict(r: sqlite3.Row) -> dict:
    return {"id": r["id"], "image_id": r["image_id"],
            **{k: round(float(r[k]), 2) for k in ("x1", "y1", "x2", "y2")},
            "class_name": r["class_name"],
            **{k: (None if r[k] is None else round(float(r[k]), 4))
               for k in ("score", "det_conf", "class_conf", "magnification_est")},
            "probs": json.loads(r["probs"] or "{}"), "source": r["source"],
            "corrected": r["source"] == "added" or r["original_class"] is not None,
            "original_class": r["original_class"]}


def _check_class(name: str) -> None:
    if name not in ALL_CLASSES:
        raise BadRequest(f"class {name!r}: expected one of {', '.join(ALL_CLASSES)}")


def _unique(rel: str, used: set[str]) -> str:
    if rel not in used:
        return rel
    stem, dot, ext = rel.rpartition(".")
    k = 2
    while f"{stem}-{k}.{ext}" in used:
        k += 1
    return f"{stem}-{k}.{ext}"


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
