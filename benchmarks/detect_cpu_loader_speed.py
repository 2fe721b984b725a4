# CPU measurement for docs/detect.md; run in the folder where detect_cpu_train_speed.py made ds1024/
import sys, time, json
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]; sys.path.insert(0, str(REPO))
from mixmag.detect.yolo_env import setup_ultralytics
setup_ultralytics()
from ultralytics.cfg import get_cfg
from ultralytics.data import build_yolo_dataset
from ultralytics.data.utils import check_det_dataset
from mixmag.detect.train import AUGMENT
data = check_det_dataset("ds1024/data.yaml")
out = {}
for imgsz in (640, 1024):
    cfg = get_cfg(overrides=dict(imgsz=imgsz, **AUGMENT, cache="ram"))
    ds = build_yolo_dataset(cfg, data["train"], 16, data, mode="train")
    for i in range(4): ds[i]  # warm (cache fills)
    for i in range(len(ds)): ds[i]
    t = time.perf_counter(); n = 96
    for i in range(n): ds[i % len(ds)]
    out[imgsz] = round(n / (time.perf_counter() - t), 1)
print("LOADER", json.dumps({"images_per_s_one_core": out, "cache": "ram", "mosaic": 1.0}))
