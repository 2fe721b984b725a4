"""The model zoo: ``models/zoo.yaml`` names every released model, its file, checksum, status, the
predict preset it needs and its figures (with the commands that made them).

Code names a zoo entry, never a path: ``resolve("classifier-lite2-224", "classify")`` gives the
weights file, checked against its sha256. A name that is not in the zoo is taken as a path to a
user's own file. ``$MIXMAG_ZOO`` points at another zoo file (its ``file`` entries are relative
to it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .errors import MixmagError
from .fileio import sha256_file

FORMAT = "mixmag-zoo/1"
TASKS = ("detect", "classify")
STATUSES = ("default", "supported", "archived")
PRESET_KEYS = ("mode", "scale_norm", "margin", "window")
DEFAULT_ZOO = Path(__file__).resolve().parents[1] / "models" / "zoo.yaml"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    task: str
    file: Path
    sha256: str
    status: str
    preset: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    summary: str = ""
    recipe: str = ""
    released: str = ""
    commit: str = ""   # archived: the last commit whose tree holds the weights
    relpath: str = ""  # ``file`` as the zoo file writes it (relative to the zoo file)

    @property
    def folder(self) -> Path:
        return self.file.parent

    def path(self) -> Path:
        """The weights file, present and matching its checksum, or a one-line error."""
        if self.status == "archived":
            raise MixmagError(f"{self.name}: archived; its weights left the tree after commit "
                              f"{self.commit} (`git show {self.commit}:models/{self.relpath} > best.pt` "
                              "brings them back; then pass that file)")
        if not self.file.is_file():
            raise MixmagError(f"{self.name}: its weights {self.file} are not in this installation")
        if _checksum(str(self.file), self.file.stat().st_mtime_ns) != self.sha256:
            raise MixmagError(f"{self.name}: {self.file} does not match the zoo's sha256 "
                              f"({self.sha256[:12]}...); the file is damaged or was replaced")
        return self.file


@lru_cache(maxsize=32)
def _checksum(path: str, _mtime_ns: int) -> str:
    return sha256_file(path)


def zoo_file() -> Path:
    return Path(os.environ.get("MIXMAG_ZOO") or DEFAULT_ZOO)


@dataclass(frozen=True)
class Zoo:
    models: dict[str, ZooEntry]
    pipelines: dict[str, dict]
    path: Path

    def entry(self, name: str) -> ZooEntry:
        if name not in self.models:
            raise MixmagError(f"{name}: not in the model zoo ({self.path}); known: "
                              + ", ".join(self.names()))
        return self.models[name]

    def names(self, task: str | None = None, archived: bool = False) -> list[str]:
        return [n for n, e in self.models.items()
                if (task is None or e.task == task) and (archived or e.status != "archived")]

    def default(self, task: str, pipeline: str = "default") -> ZooEntry:
        key = {"detect": "detector", "classify": "classifier"}[task]
        p = self.pipeline(pipeline)
        return self.entry(p[key])

    def pipeline(self, name: str) -> dict:
        if name not in self.pipelines:
            raise MixmagError(f"--models {name}: not a pipeline of the model zoo ({self.path}); "
                              "known: " + ", ".join(self.pipelines))
        return self.pipelines[name]


def _bad(path: Path, what: str) -> MixmagError:
    return MixmagError(f"{path}: not a mixmag model zoo ({what})")


@lru_cache(maxsize=4)
def _load(path: str, _mtime_ns: int) -> Zoo:
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise _bad(p, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(p, f"expected format: {FORMAT}")
    models = {}
    for name, e in (data.get("models") or {}).items():
        if not isinstance(e, dict):
            raise _bad(p, f"entry {name} is not a mapping")
        missing = [k for k in ("task", "file", "sha256", "status") if k not in e]
        if missing or e["task"] not in TASKS or e["status"] not in STATUSES:
            raise _bad(p, f"entry {name}: needs task {TASKS}, file, sha256, status {STATUSES}")
        preset = dict(e.get("preset") or {})
        unknown = set(preset) - set(PRESET_KEYS)
        if unknown:
            raise _bad(p, f"entry {name}: unknown preset keys {sorted(unknown)}")
        models[name] = ZooEntry(name=name, task=e["task"], file=(p.parent / e["file"]).resolve(),
                                sha256=str(e["sha256"]), status=e["status"], preset=preset,
                                metrics=dict(e.get("metrics") or {}), summary=str(e.get("summary", "")),
                                recipe=str(e.get("recipe", "")), released=str(e.get("released", "")),
                                commit=str(e.get("commit", "")), relpath=str(e["file"]))
    pipelines = dict(data.get("pipelines") or {})
    for pname, spec in pipelines.items():
        for key, task in (("detector", "detect"), ("classifier", "classify")):
            ref = (spec or {}).get(key)
            if ref not in models or models[ref].task != task:
                raise _bad(p, f"pipeline {pname}: {key} {ref!r} is not a {task} entry")
    for task in TASKS:
        defaults = [n for n, e in models.items() if e.task == task and e.status == "default"]
        if len(defaults) > 1:
            raise _bad(p, f"more than one default {task} model: {defaults}")
    return Zoo(models, pipelines, p)


def load_zoo(path: str | os.PathLike | None = None) -> Zoo:
    p = Path(path) if path else zoo_file()
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        raise MixmagError(f"{p}: the model zoo file is missing (set $MIXMAG_ZOO or reinstall)") from None
    return _load(str(p), mtime)


def resolve(spec: str | os.PathLike | None, task: str, pipeline: str = "default"
            ) -> tuple[Path, ZooEntry | None]:
    """(weights file, zoo entry or None) for a zoo name, a path, or None (the preset's model)."""
    zoo = load_zoo()
    if spec is None:
        entry = zoo.default(task, pipeline)
        return entry.path(), entry
    name = str(spec)
    if name in zoo.models:
        entry = zoo.models[name]
        if entry.task != task:
            raise MixmagError(f"{name}: a {entry.task} model in the zoo, not a "
                              f"{'detector' if task == 'detect' else 'classifier'}")
        return entry.path(), entry
    return Path(name), None


def default_preset(pipeline: str = "default") -> dict:
    """The predict settings of a zoo pipeline: its classifier's preset."""
    return dict(load_zoo().default("classify", pipeline).preset)


def describe(name: str | None = None, archived: bool = False) -> str:
    """``mixmag models``: a table of the zoo, or one entry in full."""
    import yaml

    zoo = load_zoo()
    if name:
        e = zoo.entry(name)
        used = [p for p, spec in zoo.pipelines.items() if name in spec.values()]
        record = {"name": e.name, "task": e.task, "status": e.status, "file": e.relpath,
                  "sha256": e.sha256, "released": e.released or None, "summary": e.summary,
                  "recipe": e.recipe or None, "preset": e.preset or None,
                  "metrics": e.metrics or None, "commit": e.commit or None,
                  "in presets": used or None, "folder": str(e.folder)}
        return yaml.safe_dump({k: v for k, v in record.items() if v is not None},
                              sort_keys=False, allow_unicode=True, width=100).rstrip()
    rows = [("name", "task", "status", "summary")]
    for n in zoo.names(archived=archived):
        e = zoo.models[n]
        rows.append((n, e.task, e.status, e.summary))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}" for r in rows]
    lines.append("")
    lines += [f"preset {p}: detector {s['detector']}, classifier {s['classifier']}"
              for p, s in zoo.pipelines.items()]
    if not archived:
        n_arch = len(zoo.names(archived=True)) - len(zoo.names())
        if n_arch:
            lines.append(f"({n_arch} archived models not shown: --all)")
    return "\n".join(lines)
