# CPU measurement for docs/detect.md; run from a scratch folder: python benchmarks/detect_cpu_train_speed.py 640 8 (makes ds1024/ there)
import sys, time, json
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]; sys.path[:0] = [str(REPO), str(REPO / "tests")]
from pathlib import Path
import numpy as np, torch
from test_detect_drawn import make_yolo_dataset
imgsz, batch = int(sys.argv[1]), int(sys.argv[2])
data = make_yolo_dataset(Path("ds1024"), counts=(("train", 48), ("val", 2)), size=1024, per_image=8) if not Path("ds1024/data.yaml").exists() else Path("ds1024/data.yaml")
from mixmag.detect.yolo_env import setup_ultralytics
from mixmag.detect.train import AUGMENT
YOLO = setup_ultralytics()
stamps = []
m = YOLO(str(REPO / "models" / "yolo11n-mixmag.yaml"))
m.add_callback("on_train_batch_end", lambda tr: stamps.append(time.perf_counter()))
m.train(data=str(data), imgsz=imgsz, batch=batch, epochs=1, workers=0, device="cpu", plots=False,
        val=False, project=str(Path("runs").resolve()), name=f"s{imgsz}", exist_ok=True, amp=False,
        verbose=False, **AUGMENT)
d = np.diff(stamps)[1:]  # skip the first (warm-up) interval
print("TRAIN", json.dumps({"imgsz": imgsz, "batch": batch, "threads": torch.get_num_threads(),
      "iters_timed": len(d), "s_per_iter_median": round(float(np.median(d)), 3),
      "images_per_s": round(batch / float(np.median(d)), 2)}))
