# Device smoke run of the detector recipe on drawn 1024² images (throughput, polars-free install).
# Run from the repo root on the GPU machine with the ultralytics wheel in .whl/:  bash benchmarks/device_detect_smoke.sh
set -x; export PYTHONPATH=$PWD OMP_NUM_THREADS=4
python -c "import torch,sys;print(sys.version.split()[0],torch.__version__,torch.cuda.get_device_name(0))"
python -c "import torchvision;print('tv',torchvision.__version__)"; python -c "import polars" 2>&1|tail -1; python -c "import tqdm" 2>&1|tail -1; python -c "import pycocotools" 2>&1|tail -1
python - <<'P'
import sys,time; sys.path.insert(0,"tests"); t=time.time()
from pathlib import Path
from test_detect_drawn import make_yolo_dataset
make_yolo_dataset(Path("/tmp/ds"), counts=(("train",1200),("val",100)), size=1024, per_image=10)
print("dataset s", time.time()-t)
P
python tools/device_train_detector.py --data /tmp/ds/data.yaml --out runs/detect/gpu1024 --minutes 2.5 --imgsz 1024 --batch 32 --workers 12 --cache ram --amp bf16 --wheels .whl --bench-batches 1,8,32,64 > $OUT/train1024.log 2>&1; tail -3 $OUT/train1024.log
cp runs/detect/gpu1024/device_metrics.json $OUT/dm1024.json; cp runs/detect/gpu1024/results.csv $OUT/r1024.csv
python tools/device_train_detector.py --data /tmp/ds/data.yaml --out runs/detect/gpu640 --minutes 0.75 --imgsz 640 --batch 64 --workers 12 --cache ram --amp bf16 --bench-batches 1,64 > $OUT/train640.log 2>&1; tail -2 $OUT/train640.log
cp runs/detect/gpu640/device_metrics.json $OUT/dm640.json; cp runs/detect/gpu640/results.csv $OUT/r640.csv
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
