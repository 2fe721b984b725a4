"""The benchmark harness: what the scripts under ``benchmarks/`` share, and what the tests check.

- ``record``: one result record (command, commit, machine, library versions, date, load at the
  start and the end), written atomically;
- ``models``: model arguments (zoo names or paths) and the short names results are keyed by;
- ``detection``: the target figures of a detector (+ classifier) configuration on a generated
  set, with the box and probability caches and the throughput timing (``benchmarks/detect.py``);
- ``pairs``: the paired bootstrap comparison of two pairs (``benchmarks/compare_pairs.py``);
- ``selection``: a stated selection rule applied to val results (``benchmarks/select_pair.py``);
- ``mapcap``: the mAP ceiling a classifier's recall allows (``benchmarks/map_cap.py``);
- ``folds``: the cross-validation folds of a fine-tuning recipe (``benchmarks/classify_cv.py``);
- ``review``: the images a blind review of a composite set's truth leaves out;
- ``singlecell``: single-cell protocol helpers (the rescaled scales, a checkpoint's softmax on
  its pooled features).

Modules import the heavy libraries on first use, so a script's ``--help`` stays fast. Nothing in
mixmag imports this package (it sits above ``mixmag.evaluate`` and ``mixmag.pipeline``).
"""
