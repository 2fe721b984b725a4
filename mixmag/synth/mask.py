"""Segment the labelled cell at the centre of a PBC crop: nucleus seed -> GrabCut -> clean-up.

PBC crops are centred on one white cell (or platelet) among red cells. The stain that colours
nuclei, basophil granules and platelets purple absorbs green light far more than red cells or
plasma do, so after white-balancing, the green optical density (OD) picks the nucleus out. The
component nearest the centre (plus nearby nucleus lobes) seeds GrabCut, which grows it into the
cytoplasm using colour models of cell and surroundings; everything far from the nucleus and every
other stained blob is fixed as background, so neighbouring red cells and cells stay out.

Platelets have no nucleus: the stained blob at the centre is the platelet, slightly dilated to
keep its pale rim.

Where the result is implausible (no stain near the centre, mask area outside the per-class range,
mask touching the crop edge), ``cell_mask`` falls back to the nucleus seed grown by a class-typical
rim and says so in ``MaskResult.status``, so callers can count and inspect failures.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Bump when the algorithm changes: cached masks are keyed by it. MASK_VERSION is the default (the
# released crop classifier, classifier-lite0-160-crops-m5, was adapted to it); older versions stay
# selectable so that a recorded dataset can be made again exactly (m4 until 2026-11-27).
MASK_VERSION = "m5"
MASK_VERSIONS = ("m4", "m5")
# m5: GrabCut starts from a fixed RNG state (its colour models are seeded from OpenCV's global RNG,
# so m4 masks can differ by a few pixels with what ran before), and pale cytoplasm that GrabCut
# gives to the background is recovered (_with_pale_cytoplasm).
GRABCUT_SEED = 12345

# Plausible whole-cell area per class, in pixels at PBC resolution (~360 px crops, ~0.1 µm/px
# is not documented; ranges were read off masks of every class on real crops and are wide).
AREA_RANGE = {
    "basophil": (3500, 22000), "eosinophil": (5000, 26000), "erythroblast": (1500, 20000),
    "ig": (5000, 36000), "lymphocyte": (2500, 22000), "monocyte": (6000, 40000),
    "neutrophil": (5000, 26000), "platelet": (40, 4000),
}
# Fallback cytoplasm rim (pixels at full resolution) grown around the nucleus seed.
FALLBACK_RIM = {"basophil": 10, "eosinophil": 14, "erythroblast": 8, "ig": 14, "lymphocyte": 6,
                "monocyte": 16, "neutrophil": 14, "platelet": 2}


@dataclass
class MaskResult:
    mask: np.ndarray          # uint8 {0, 255}, full resolution of the source
    status: str               # "ok" or "fallback:<reason>"
    area: int                 # pixels of the mask
    nucleus_area: int         # pixels of the stained seed

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def white_balance(bgr: np.ndarray) -> np.ndarray:
    """Divide by the bright plasma colour (99th percentile per channel), so both PBC tone families
    (cream and grey-blue) look alike to the thresholds below."""
    white = np.percentile(bgr.reshape(-1, 3), 99, axis=0).astype(np.float32)
    white = np.maximum(white, 60.0)
    return np.clip(bgr.astype(np.float32) / white, 1 / 255, 1.0)


def stain_map(bgr: np.ndarray) -> np.ndarray:
    """Boolean map of purple-stained pixels (nuclei, platelets, basophil granules).

    Purple absorbs green strongly and blue weakly: green OD high and clearly above blue OD.
    Red cells (pink) absorb green moderately; eosinophil granules (orange) absorb blue as much as
    green, so neither passes.
    """
    wb = white_balance(bgr)
    od = -np.log(wb)
    od_b, od_g = od[..., 0], od[..., 1]
    return (od_g > 0.75) & (od_g - od_b > 0.45)


def stained_blobs(bgr: np.ndarray, min_area: int = 1) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components of the stain map (8-connected), with areas >= min_area kept."""
    s = stain_map(bgr).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(s, connectivity=8)
    keep = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1
    return len(keep), lab, stats[keep]


def _seed(stain: np.ndarray, is_platelet: bool, scale: float) -> np.ndarray | None:
    """The stained component at the centre, with nucleus lobes close to it."""
    h, w = stain.shape
    n, lab, stats, cents = cv2.connectedComponentsWithStats(stain.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    min_area = (8 if is_platelet else 60) * scale * scale
    cy, cx = h / 2, w / 2
    # distance from the centre to each component's nearest pixel
    yy, xx = np.nonzero(lab)
    d = np.hypot(yy - cy, xx - cx)
    ids = lab[yy, xx]
    near = np.full(n, np.inf)
    np.minimum.at(near, ids, d)
    area = stats[:, cv2.CC_STAT_AREA].astype(float)
    cand = [i for i in range(1, n) if area[i] >= min_area and near[i] < (40 if is_platelet else 70) * scale]
    if not cand:
        return None
    # nearest to the centre; among near-ties the bigger one (a lobe vs a stray platelet)
    best = min(cand, key=lambda i: (near[i] - 0.02 * np.sqrt(area[i]) / scale, -area[i]))
    seed = lab == best
    if is_platelet:
        return seed
    # lobes of a segmented nucleus: other sizeable stained parts close to the chosen one
    grow = cv2.dilate(seed.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (int(2 * 14 * scale) + 1,) * 2)).astype(bool)
    for i in range(1, n):
        if i != best and area[i] >= min_area / 2 and grow[lab == i].any() and \
                np.hypot(cents[i][0] - cx, cents[i][1] - cy) < 80 * scale:
            seed |= lab == i
    return seed


def _centre_seed(bgr: np.ndarray, is_platelet: bool, work_size: int):
    """The image at ``work_size`` px, its stain map, the centre seed (or None) and the scale."""
    H, W = bgr.shape[:2]
    scale = work_size / max(H, W)
    small = cv2.resize(bgr, (max(1, round(W * scale)), max(1, round(H * scale))),
                       interpolation=cv2.INTER_AREA)
    stain = stain_map(small)
    return small, stain, _seed(stain, is_platelet, scale), scale


def nucleus_share(bgr: np.ndarray, class_name: str, work_size: int = 180) -> float | None:
    """Fraction of the image's pixels covered by the stained nucleus at its centre (platelets: the
    stained platelet), or None where no stain sits near the centre.

    The same seed ``cell_mask`` starts from, without GrabCut: a few milliseconds an image. As a
    fraction of the image it does not depend on the image's pixel size, so its square root against
    a class's native share estimates how much the cell is magnified in a fixed field of view.
    """
    try:
        seed = _centre_seed(bgr, class_name == "platelet", work_size)[2]
    except (cv2.error, ValueError):  # degenerate images: no estimate, as with no stain
        return None
    return None if seed is None else float(seed.sum()) / seed.size


def _disk(r: float) -> np.ndarray:
    k = max(1, int(round(r)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))


def _largest_holding(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    hit = np.bincount(lab[seed & mask.astype(bool)], minlength=n)
    hit[0] = 0
    if hit.max() == 0:
        return np.zeros_like(mask, bool)
    return lab == int(np.argmax(hit))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    cnts, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, cnts, -1, 1, thickness=-1)
    return out.astype(bool)


def cell_mask(bgr: np.ndarray, class_name: str, work_size: int = 180,
              iterations: int = 4, version: str = MASK_VERSION) -> MaskResult:
    """Mask of the cell at the centre of one PBC crop; never raises on odd images (falls back)."""
    check_version(version)
    try:
        return _cell_mask(bgr, class_name, work_size, iterations, version)
    except (cv2.error, ValueError) as e:
        return _fallback(bgr, class_name, None, f"error-{type(e).__name__}")


def check_version(version: str) -> str:
    if version not in MASK_VERSIONS:
        from ..errors import MixmagError

        raise MixmagError(f"mask version {version!r}: use one of {', '.join(MASK_VERSIONS)}")
    return version


def _cell_mask(bgr: np.ndarray, class_name: str, work_size: int = 180,
               iterations: int = 4, version: str = MASK_VERSION) -> MaskResult:
    """Mask of the cell at the centre of one PBC crop (uint8 0/255 at the crop's resolution).

    GrabCut runs at ``work_size`` px (about half of PBC's 360) for speed; the mask is brought back
    to full resolution by smooth (linear) upsampling and a 0.5 threshold.
    """
    is_platelet = class_name == "platelet"
    small, stain, seed, scale = _centre_seed(bgr, is_platelet, work_size)
    if seed is None:
        return _fallback(bgr, class_name, None, "no-stain-at-centre")
    if is_platelet:
        m = cv2.dilate(seed.astype(np.uint8), _disk(1.5 * scale * 2)).astype(bool)
        m = _fill_holes(m)
        return _finish(bgr, class_name, m, seed, "ok")

    h, w = stain.shape
    seed_u8 = seed.astype(np.uint8)
    nuc_area = int(seed.sum())
    r_nuc = np.sqrt(nuc_area / np.pi)
    dist = cv2.distanceTransform(1 - seed_u8, cv2.DIST_L2, 5)
    # a white cell's radius is at most ~2x its nucleus' (monocytes, lymphocytes), plus a margin
    r_max = 1.1 * r_nuc + 40 * scale
    od = -np.log(white_balance(small))
    # cytoplasm is bluish-grey or lilac: it absorbs red more than blue, red cells (pink) do not;
    # plasma absorbs almost nothing
    cyto = (od[..., 2] - od[..., 0] > 0.04) & (od[..., 1] > 0.10) & (dist <= r_max)
    cyto = cv2.morphologyEx(cyto.astype(np.uint8), cv2.MORPH_OPEN, _disk(1)).astype(bool)
    prior = _largest_holding(cyto | seed, seed)
    gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    gc[prior | (dist <= max(2.0, 4 * scale))] = cv2.GC_PR_FGD
    gc[dist > r_max] = cv2.GC_BGD
    other = stain & ~cv2.dilate(seed_u8, _disk(3)).astype(bool)
    gc[other] = cv2.GC_BGD            # other nuclei and platelets are never part of this cell
    core = cv2.erode(seed_u8, _disk(1)).astype(bool)
    gc[core if core.any() else seed] = cv2.GC_FGD
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    if version != "m4":
        cv2.setRNGSeed(GRABCUT_SEED)
    try:
        cv2.grabCut(small, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return _fallback(bgr, class_name, seed, "grabcut-error")
    m = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    if class_name != "eosinophil":
        # pink pixels away from the nucleus are a touching red cell, not cytoplasm (eosinophil
        # granules are orange-pink too, so they are left to GrabCut alone)
        rbc_like = (od[..., 2] - od[..., 0] < 0.02) & (od[..., 1] > 0.15) & (dist > 6 * scale)
        m &= ~rbc_like
    # cut thin bridges to touching red cells, keep the piece holding the nucleus, fill it
    m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, _disk(3 * scale * 2)).astype(bool) | seed
    m = _largest_holding(m, seed)
    m = _fill_holes(m)
    if version != "m4":
        m = _with_pale_cytoplasm(m, od, seed, scale, class_name)
    return _finish(bgr, class_name, m, seed, "ok")


def _with_pale_cytoplasm(m: np.ndarray, od: np.ndarray, seed: np.ndarray, scale: float,
                         class_name: str) -> np.ndarray:
    """Add the cell body that GrabCut missed; keep GrabCut's mask where the body is not clear.

    A neutrophil's (and many an IG's) pale lilac cytoplasm has nearly the colour of red cells, so
    GrabCut's colour models give it to the background and the mask shrinks to the nucleus (a third
    of neutrophils under m4). Colour cannot tell the two apart pixel by pixel, but shape can: every
    cell absorbs light and plasma does not, so the non-plasma region around the nucleus is the cell
    plus any touching red cells. Each red cell is a disc whose inscribed circle (a maximum of the
    distance transform) does not reach the nucleus, and is cut away. Where the rest of the cell's
    outline borders plasma it is the true membrane; an ellipse fitted to those stretches must
    follow them closely (a round cell: neutrophils, most IG and erythroblasts) and then gives the
    body, red-cell overlaps included. Otherwise (irregular cells, crowded fields) GrabCut's mask
    stands.
    """
    g = cv2.GaussianBlur(od[..., 1].astype(np.float32), (0, 0), 1.0)
    body = _fill_holes((g > 0.08) | seed)
    dt = cv2.distanceTransform(body.astype(np.uint8), cv2.DIST_L2, 5)
    dseed = cv2.distanceTransform(1 - seed.astype(np.uint8), cv2.DIST_L2, 5)
    peak = (dt >= cv2.dilate(dt, _disk(10 * scale)) - 1e-3) & (dt > 12 * scale) & (dseed > dt + 6 * scale)
    cut = body.astype(np.uint8)
    for y, x in zip(*np.nonzero(peak)):
        cv2.circle(cut, (int(x), int(y)), int(round(dt[y, x] + 3 * scale)), 0, -1)
    r_max = 1.1 * np.sqrt(seed.sum() / np.pi) + 40 * scale
    cut &= (dseed <= r_max).astype(np.uint8)
    b = cv2.morphologyEx(cut, cv2.MORPH_OPEN, _disk(8 * scale)).astype(bool) | seed
    b = _fill_holes(_largest_holding(b, seed)).astype(np.uint8)
    outline = b.astype(bool) & ~cv2.erode(b, _disk(1)).astype(bool)
    free = outline & cv2.dilate((~body).astype(np.uint8), _disk(1)).astype(bool)
    if free.sum() < max(20, 0.5 * outline.sum()):
        return m
    ys, xs = np.nonzero(free)
    (cx, cy), (d1, d2), ang = cv2.fitEllipse(np.stack([xs, ys], 1).astype(np.float32))
    if min(d1, d2) <= 0 or max(d1, d2) > 1.5 * min(d1, d2):
        return m
    ell = np.zeros_like(b)
    cv2.ellipse(ell, ((cx, cy), (d1, d2), ang), 1, -1)
    ring = np.zeros_like(b)
    cv2.ellipse(ring, ((cx, cy), (d1, d2), ang), 1, 1)
    off = cv2.distanceTransform(1 - ring, cv2.DIST_L2, 3)[ys, xs]
    if np.mean(off <= 4 * scale) < 0.9 or not ell[seed].all():
        return m
    u = m | (ell.astype(bool) & body) | seed
    u = _fill_holes(_largest_holding(u, seed))
    # the plausibility _finish applies, checked here so that a failure keeps GrabCut's mask
    # instead of falling back to the nucleus hull
    if not _area_ok(class_name, u.sum() / scale ** 2) or _touches_edge(u):
        return m
    return u


def _area_ok(class_name: str, area: float) -> bool:
    lo, hi = AREA_RANGE[class_name]
    return lo <= area <= hi


def _touches_edge(m: np.ndarray) -> bool:
    return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def _upsample(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    H, W = shape
    f = cv2.resize(m.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    f = cv2.GaussianBlur(f, (0, 0), 1.0)
    return f >= 0.5


def _finish(bgr, class_name, m_small, seed_small, status) -> MaskResult:
    H, W = bgr.shape[:2]
    m = _upsample(m_small, (H, W))
    seed = _upsample(seed_small, (H, W))
    area = int(m.sum())
    if not _area_ok(class_name, area):
        small = area < AREA_RANGE[class_name][0]
        return _fallback(bgr, class_name, seed_small, f"area-{'small' if small else 'large'}")
    if _touches_edge(m):
        return _fallback(bgr, class_name, seed_small, "touches-edge")
    return MaskResult((m * 255).astype(np.uint8), status, area, int(seed.sum()))


def _fallback(bgr, class_name, seed_small, reason) -> MaskResult:
    """Nucleus seed grown by a class-typical rim (convex hull, so lobes join); or, with no seed,
    a disc of the class' typical size at the centre."""
    H, W = bgr.shape[:2]
    out = np.zeros((H, W), np.uint8)
    nuc = 0
    seed = _upsample(seed_small, (H, W)) if seed_small is not None and seed_small.any() else None
    if seed is not None and seed.any():
        nuc = int(seed.sum())
        pts = cv2.findNonZero(seed.astype(np.uint8))
        hull = cv2.convexHull(pts)
        cv2.fillConvexPoly(out, hull, 255)
        out = cv2.dilate(out, _disk(FALLBACK_RIM[class_name]))
    else:
        lo, hi = AREA_RANGE[class_name]
        r = int(np.sqrt(np.sqrt(lo * hi) / np.pi))
        cv2.circle(out, (W // 2, H // 2), r, 255, -1)
    out[[0, -1]] = 0
    out[:, [0, -1]] = 0
    return MaskResult(out, f"fallback:{reason}", int((out > 0).sum()), nuc)
