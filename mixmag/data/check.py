"""`mixmag data check`: what is in the dataset and what is broken."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..classes import CLASS_NAMES
from .scan import list_files, scan_pbc


@dataclass
class CheckReport:
    root: Path
    files: pd.DataFrame                      # one row a file, from scan_pbc
    missing_classes: list[str] = field(default_factory=list)
    unknown_folders: list[str] = field(default_factory=list)

    @property
    def unreadable(self) -> pd.DataFrame:
        return self.files[~self.files["ok"]]

    @property
    def duplicate_groups(self) -> list[list[str]]:
        ok = self.files[self.files["ok"]]
        groups = ok.groupby("sha256")["path"].apply(list)
        return [g for g in groups if len(g) > 1]

    @property
    def usable(self) -> bool:
        return bool(self.files["ok"].sum() > 0 and not self.missing_classes)

    def counts(self) -> pd.DataFrame:
        ok = self.files[self.files["ok"]]
        c = ok.groupby("class_name").size().reindex(list(CLASS_NAMES), fill_value=0)
        sizes = {
            name: ", ".join(f"{w}x{h}: {n}" for (w, h), n in
                            g.groupby(["width", "height"]).size().sort_values(ascending=False).items())
            for name, g in ok.groupby("class_name")
        }
        sizes = pd.Series(sizes, dtype=object).reindex(list(CLASS_NAMES), fill_value="")
        return pd.DataFrame({"images": c, "sizes (w x h: n)": sizes})

    def render(self) -> str:
        lines = [f"PBC dataset at {self.root}", ""]
        lines.append(self.counts().to_string())
        lines.append(f"{'total':>12} {int(self.files['ok'].sum())}")
        lines.append("")
        if self.missing_classes:
            lines.append("missing class folders: " + ", ".join(self.missing_classes))
        if self.unknown_folders:
            lines.append("unknown folders (ignored): " + ", ".join(self.unknown_folders))
        bad = self.unreadable
        lines.append(f"unreadable files (skipped by every command): {len(bad)}")
        for _, r in bad.iterrows():
            lines.append(f"  {r['path']}: {r['error']}")
        dups = self.duplicate_groups
        lines.append(f"exact duplicates (same bytes): {len(dups)} groups")
        for g in dups[:20]:
            lines.append("  " + " = ".join(g))
        if len(dups) > 20:
            lines.append(f"  ... and {len(dups) - 20} more groups")
        lines.append("")
        lines.append("usable: yes" if self.usable else "usable: NO")
        return "\n".join(lines)


def check_dataset(root: Path, workers: int = 0, progress: bool = True) -> CheckReport:
    _, missing, unknown = list_files(root)
    files = scan_pbc(root, workers=workers, progress=progress)
    return CheckReport(root=root, files=files, missing_classes=missing, unknown_folders=unknown)
