import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

# Tests never touch a user's ultralytics settings or the network.
os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO / "runs" / ".ultralytics"))
os.environ.setdefault("YOLO_OFFLINE", "1")


def _real_pbc() -> Path | None:
    from mixmag.data.scan import default_search_paths, looks_like_pbc

    env = os.environ.get("MIXMAG_PBC")
    for cand in ([Path(env)] if env else []) + default_search_paths():
        if looks_like_pbc(cand):
            return cand
    return None


@pytest.fixture(scope="session")
def pbc_root() -> Path:
    """The real PBC dataset; tests that need it are skipped (with the reason) where it is absent."""
    root = _real_pbc()
    if root is None:
        pytest.skip("real PBC dataset not found (set MIXMAG_PBC or place it at ../shared/data/pbc)")
    return root


@pytest.fixture(scope="session")
def drawn_pbc(tmp_path_factory) -> Path:
    """A small PBC-layout folder of images the test draws itself (12 a class, plus .DS_Store junk)."""
    from drawn import make_drawn_pbc

    return make_drawn_pbc(tmp_path_factory.mktemp("drawn_pbc") / "pbc")


@pytest.fixture(scope="session")
def drawn_manifest(drawn_pbc, tmp_path_factory) -> Path:
    """A split manifest over ``drawn_pbc`` (written by the same code as `mixmag split`)."""
    from mixmag.data.check import check_dataset
    from mixmag.data.split import make_split, write_manifest

    out = tmp_path_factory.mktemp("manifest") / "split.csv"
    rep = check_dataset(drawn_pbc, workers=1, progress=False)
    write_manifest(make_split(rep.files, seed=0), out, drawn_pbc, 0, (0.7, 0.15, 0.15))
    return out


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the bad-input table's count (tests/test_bad_inputs.py fills it)."""
    mod = sys.modules.get("test_bad_inputs")
    line = mod.summary_line() if mod is not None and hasattr(mod, "summary_line") else None
    if line:
        terminalreporter.write_line(line)


@pytest.fixture()
def one_torch_thread():
    """Torch on one thread for the test: small models train faster and deterministically so."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
