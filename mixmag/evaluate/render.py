"""report.md and one self-contained report.html from the same sections.

The report is built once as a list of sections (headline cards, tables, figures, notes); the two
renderers only lay them out. The HTML embeds every picture as base64 and carries its own CSS, so
the single file opens anywhere without network or neighbouring files.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field

import numpy as np

from ..classes import CLASS_NAMES

DASH = "–"


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return DASH
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return DASH
    return f"{f:.{digits}f}"


def fmt_ci(v, ci) -> str:
    if ci is None or any(c is None or not math.isfinite(c) for c in ci):
        return fmt(v)
    return f"{fmt(v)} [{fmt(ci[0])}, {fmt(ci[1])}]"


def ci_cell(v, ci) -> Cell:
    """A figure with its interval as secondary text, shaded by the figure."""
    try:
        heat = float(v) if v is not None and math.isfinite(float(v)) else None
    except (TypeError, ValueError):
        heat = None
    if ci is None or any(c is None or not math.isfinite(c) for c in ci):
        return Cell(fmt(v), heat)
    return Cell(fmt(v), heat, f"[{fmt(ci[0])}, {fmt(ci[1])}]")


@dataclass
class Cell:
    text: str
    heat: float | None = None  # 0..1 figure to shade the cell by (F1, precision, ...)
    sub: str = ""  # secondary text (an interval), shown smaller in HTML


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    first_col_header: bool = True
    emphasise_rows: set = field(default_factory=set)  # row indexes shown as summary rows
    css: str = ""


@dataclass
class Figure:
    name: str  # file name of the PNG
    png: bytes
    alt: str


@dataclass
class Section:
    title: str
    anchor: str
    text: list[str] = field(default_factory=list)
    cards: list[tuple[str, str, str]] = field(default_factory=list)  # (label, value, detail)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    strip: list[dict] = field(default_factory=list)  # worst images: {image, caption, jpeg}


def _c(v, heat=False, digits=3):
    f = None
    if heat:
        try:
            f = float(v)
            f = f if math.isfinite(f) else None
        except (TypeError, ValueError):
            f = None
    return Cell(fmt(v, digits), f)


# ------------------------------------------------------------------ sections


def build_sections(result, figures: dict[str, bytes], strip: list[dict],
                   strip_note: str = "") -> list[Section]:
    r, h = result, result.headline
    det = r.mode == "detection"
    secs = [Section("Headline figures", "headline", cards=_cards(r))]
    if det:
        secs[0].text.append(
            f"IoU ≥ {fmt(h['iou'], 2)}, confidence ≥ {fmt(h['conf'], 2)}: {h['n_truth']:,} true cells "
            f"in {h['n_images']:,} images, {h['n_pred']:,} predictions kept; {h['n_matched']:,} "
            f"matched ({h['n_confused']:,} with the wrong class), {h['n_missed']:,} missed, "
            f"{h['n_spurious']:,} spurious.")
        n_red = int(r.inputs.get("n_truth_red_cells") or 0)
        if n_red:
            secs[0].text.append(
                f"The truth boxes {n_red:,} red cells too. A red cell is none of the eight: a box "
                f"of one of the eight on it is a false positive of that class "
                f"({h.get('n_on_red_cells', 0):,} such boxes), and red cells no box claims count "
                "nowhere; red-cell rows of the predictions are left out.")
    else:
        secs[0].text.append(f"{h['n_truth']:,} single-cell images.")
    secs[0].text += [f"Note: {n}" for n in r.notes]
    secs.append(_per_class_section(r))
    secs.append(_erythroblast_section(r))
    secs.append(_confusion_section(r, figures))
    if det and r.coco:
        secs.append(Section("Precision–recall (COCO)", "pr", text=[
            "Per-class precision–recall curves at IoU 0.5 from pycocotools' COCOeval "
            "(interpolated precision at 101 recall points; all predictions ranked by score, "
            "--conf not applied)."], figures=[f for f in _figs(figures, ["pr_curve.png"])]))
    elif r.coco:
        secs.append(Section("Precision–recall (probabilities)", "pr", text=[
            "One-vs-rest precision–recall per class from the p_<class> columns (scikit-learn)."],
            figures=_figs(figures, ["pr_curve.png"])))
    if r.per_magnification is not None and len(r.per_magnification):
        secs.append(_magnification_section(r, figures))
    if len(r.by_iou) > 1:
        secs.append(_iou_section(r))
    if r.sweep is not None and len(r.sweep):
        secs.append(_sweep_section(r, figures))
    if det:
        s = Section("Worst-scoring images", "worst", strip=strip)
        s.text.append(strip_note or "Images ranked by errors (missed + spurious + wrong class). "
                      "Green: true cell; blue: right prediction; orange: wrong class; "
                      "red: spurious box; thick magenta: missed cell.")
        secs.append(s)
    secs.append(_method_section(r))
    return secs


def _figs(figures, names):
    alts = {"confusion_counts.png": "confusion matrix, counts",
            "confusion_normalised.png": "confusion matrix, row-normalised",
            "pr_curve.png": "precision-recall curves per class",
            "sweep.png": "figures against the confidence threshold",
            "magnification.png": "F1 by magnification"}
    return [Figure(n, figures[n], alts.get(n, n)) for n in names if n in figures]


def _cards(r) -> list[tuple[str, str, str]]:
    h, e = r.headline, r.erythroblast
    ci = h.get("macro_f1_ci")
    cards = [("Macro F1", fmt(h["macro_f1"]),
              f"95 % CI {fmt(ci[0])}–{fmt(ci[1])}" if ci and None not in ci else "8 classes")]
    if r.mode == "detection":
        cards += [("mAP@0.5", fmt(h.get("map50")), "COCOeval"),
                  ("mAP@0.5:0.95", fmt(h.get("map50_95")), "COCOeval"),
                  ("Localisation P / R", f"{fmt(h['loc_precision'])} / {fmt(h['loc_recall'])}",
                   "class-agnostic"),
                  ("Accuracy of matched", fmt(h["accuracy_matched"]), f"{h['n_matched']:,} cells"),
                  ("Micro F1", fmt(h["micro_f1"]), "missed and spurious count")]
    else:
        cards += [("Accuracy", fmt(h["accuracy"]), f"{h['n_truth']:,} cells")]
        if "top2_accuracy" in h:
            cards += [("Top-2 accuracy", fmt(h["top2_accuracy"]), ""),
                      ("ROC AUC (macro)", fmt(h["roc_auc_macro"]), "one-vs-rest")]
        cards += [("Weighted F1", fmt(h["weighted_f1"]), "by support")]
    eci = e.get("f1_ci")
    cards.append(("Erythroblast F1", fmt(e.get("f1")),
                  f"95 % CI {fmt(eci[0])}–{fmt(eci[1])}" if eci and None not in eci else ""))
    return cards


def _per_class_section(r) -> Section:
    t, h = r.per_class, r.headline
    det = r.mode == "detection"
    has_ci = "f1_ci_low" in t
    has_ap = "ap50" in t
    has_pap = "ap" in t
    headers = ["class", "support", "predicted", "TP", "FP", "FN", "precision", "recall",
               "F1" + (" [95 % CI]" if has_ci else "")]
    if det:
        headers += ["matched P", "matched R", "matched F1"]
    if has_ap:
        headers += ["AP@0.5", "AP@0.5:0.95"]
    if has_pap:
        headers += ["AP (probabilities)"]
    rows = []
    for x in t.itertuples(index=False):
        f1c = ci_cell(x.f1, (x.f1_ci_low, x.f1_ci_high) if has_ci else None)
        row = [Cell(x.class_name), _c(x.support), _c(x.predicted), _c(x.tp), _c(x.fp), _c(x.fn),
               _c(x.precision, True), _c(x.recall, True), f1c]
        if det:
            row += [_c(x.matched_precision, True), _c(x.matched_recall, True),
                    _c(x.matched_f1, True)]
        if has_ap:
            row += [_c(x.ap50, True), _c(x.ap50_95, True)]
        if has_pap:
            row += [_c(x.ap, True)]
        rows.append(row)
    n = len(rows)
    total_sup = int(t["support"].sum())
    for label, pre in (("macro avg", "macro"), ("weighted avg", "weighted"), ("micro avg", "micro")):
        if pre == "micro":
            p, rc, f = h["micro_precision"], h["micro_recall"], h["micro_f1"]
        else:
            p, rc, f = h[f"{pre}_precision"], h[f"{pre}_recall"], h[f"{pre}_f1"]
        ci = h.get("macro_f1_ci") if pre == "macro" else None
        row = [Cell(label), _c(total_sup), _c(h["n_pred"]), Cell(""), Cell(""), Cell(""),
               _c(p, True), _c(rc, True), ci_cell(f, ci)]
        if det:
            if pre == "macro":
                row += [_c(h["matched_macro_precision"], True), _c(h["matched_macro_recall"], True),
                        _c(h["matched_macro_f1"], True)]
            else:
                row += [Cell(""), Cell(""), Cell("")]
        if has_ap:
            row += ([_c(h.get("map50"), True), _c(h.get("map50_95"), True)] if pre == "macro"
                    else [Cell(""), Cell("")])
        if has_pap:
            row += [_c(r.coco.get("map_prob"), True) if pre == "macro" else Cell("")]
        rows.append(row)
    text = []
    if det:
        text.append("Precision, recall and F1 count missed cells and spurious boxes; a box with "
                    "the wrong class is a false negative of its true class and a false positive "
                    "of the predicted one. The matched columns use matched cells only (how well "
                    "found cells are labelled). Undefined figures (no support or no predictions) "
                    f"show {DASH} and are left out of averages.")
    if h.get("macro_f1_ci"):
        text.append(bootstrap_note(r))
    return Section("Per-class figures", "per-class", text=text,
                   tables=[Table(headers, rows, emphasise_rows=set(range(n, n + 3)))])


def _erythroblast_section(r) -> Section:
    e = r.erythroblast
    s = Section("Erythroblast", "erythroblast")
    s.text.append("Erythroblasts are nucleated red-cell precursors that look like small "
                  "lymphocytes; their figures are shown on their own.")
    rows = [[Cell("support"), _c(e.get("support"))],
            [Cell("precision"), _c(e.get("precision"), True)],
            [Cell("recall"), _c(e.get("recall"), True)],
            [Cell("F1" + (" [95 % CI]" if e.get("f1_ci") else "")),
             ci_cell(e.get("f1"), e.get("f1_ci"))],
            [Cell("erythroblasts called lymphocyte"), _c(e["erythroblast_as_lymphocyte"])],
            [Cell("lymphocytes called erythroblast"), _c(e["lymphocyte_as_erythroblast"])]]
    if r.mode == "detection":
        rows += [[Cell("erythroblasts missed"), _c(e["erythroblast_missed"])],
                 [Cell("spurious erythroblast boxes"), _c(e["spurious_erythroblast"])]]
        if "ap50" in e:
            rows += [[Cell("AP@0.5"), _c(e["ap50"], True)],
                     [Cell("AP@0.5:0.95"), _c(e["ap50_95"], True)]]
    conf = ", ".join(f"{k} {v}" for k, v in e.get("confused_with", {}).items()) or "none"
    taken = ", ".join(f"{k} {v}" for k, v in e.get("mistaken_for_it", {}).items()) or "none"
    rows += [[Cell("erythroblasts called (all classes)"), Cell(conf)],
             [Cell("called erythroblast (true class)"), Cell(taken)]]
    s.tables.append(Table(["figure", "value"], rows, css="narrow"))
    bm = e.get("by_magnification")
    if bm:
        ci = " [95 % CI]" if any("recall_ci" in v for v in bm.values()) else ""
        s.tables.append(Table(["magnification", "support", "precision" + ci, "recall" + ci, "F1"],
                              [[Cell(k), _c(v["support"]), ci_cell(v["precision"], v.get("precision_ci")),
                                ci_cell(v["recall"], v.get("recall_ci")), _c(v["f1"], True)]
                               for k, v in bm.items()],
                              caption="Erythroblast by magnification", css="narrow"))
        if ci:
            s.text.append(bootstrap_note(r))
    return s


def bootstrap_note(r) -> str:
    """What the intervals resampled, in words."""
    b = r.bootstrap or {}
    n, unit, k = b.get("n_boot", 0), b.get("unit", "image"), b.get("n_clusters", 0)
    if unit == "source":
        how = (f"over source cells ({k:,} clusters): each cell is drawn with every copy of its "
               "source, a spurious box with its image. The generator reuses source cells, and a "
               "cell labelled wrong is wrong in every copy, so copies are not independent evidence")
    else:
        how = "over images"
    return f"Intervals: percentile bootstrap {how} ({n:,} resamples)."


def _confusion_section(r, figures) -> Section:
    from .metrics import confusion_frame

    det = r.mode == "detection"
    cm = confusion_frame(r.confusion)
    if not det:
        cm = cm.iloc[:-1, :-1]
    norm = cm.div(cm.sum(axis=1).where(lambda x: x > 0), axis=0).fillna(0)
    rows = []
    for i, name in enumerate(cm.index):
        row = [Cell(name)]
        for j in range(cm.shape[1]):
            v = int(cm.iat[i, j])
            diag = i == j and i < len(CLASS_NAMES)
            row.append(Cell(f"{v:,}" if v else "·", norm.iat[i, j] if diag else
                            (-norm.iat[i, j] if v else None)))
        row.append(_c(int(cm.iloc[i].sum())))
        rows.append(row)
    text = ["Rows: true class; columns: predicted class."]
    if det:
        text[0] += (" The 'missed' column counts true cells no prediction matched; the 'spurious' "
                    "row counts predictions matching no cell.")
        if "red cell" in cm.index:
            text[0] += (" The 'red cell' row counts predictions on red cells (false positives of "
                        "their class) and, under 'missed', the red cells no box claimed (no error).")
    return Section("Confusion matrix", "confusion", text=text,
                   tables=[Table(["true \\ predicted", *cm.columns, "total"], rows, css="confusion")],
                   figures=_figs(figures, ["confusion_counts.png", "confusion_normalised.png"]))


def _magnification_section(r, figures) -> Section:
    pm = r.per_magnification
    allr = pm[pm["class_name"] == "all"]
    det = r.mode == "detection"
    headers = ["magnification", "true cells", "predictions", "micro P", "micro R", "micro F1",
               "macro F1", "accuracy of matched"]
    if det:
        headers += ["loc. P", "loc. R", "missed", "spurious"]
    rows = []
    for x in allr.itertuples(index=False):
        row = [Cell(x.magnification), _c(int(x.support)), _c(int(x.predicted)),
               _c(x.precision, True), _c(x.recall, True), _c(x.f1, True), _c(x.macro_f1, True),
               _c(x.accuracy_matched, True)]
        if det:
            row += [_c(x.loc_precision, True), _c(x.loc_recall, True), _c(int(x.n_missed)),
                    _c(int(x.n_spurious))]
        rows.append(row)
    bins = list(allr["magnification"])
    grid = pm[pm["class_name"] != "all"].pivot(index="class_name", columns="magnification",
                                               values="f1").reindex(index=list(CLASS_NAMES),
                                                                    columns=bins)
    sup = pm[pm["class_name"] != "all"].pivot(index="class_name", columns="magnification",
                                              values="support").reindex(index=list(CLASS_NAMES),
                                                                        columns=bins)
    crow = [[Cell(c)] + [Cell(f"{fmt(grid.at[c, b])} ({int(sup.at[c, b])})"
                              if np.isfinite(grid.at[c, b]) else DASH,
                              grid.at[c, b] if np.isfinite(grid.at[c, b]) else None) for b in bins]
            for c in CLASS_NAMES]
    text = ["Each discrete magnification of the truth is its own row (continuous magnifications "
            "are binned by quantiles)."]
    if det:
        text.append("Matched and missed cells take their true cell's magnification; a spurious box "
                    "takes that of the cell it overlaps most (or the nearest one).")
    s = Section("By magnification", "magnification", text=text,
                tables=[Table(headers, rows),
                        Table(["class", *bins], crow,
                              caption="F1 by class × magnification (support in brackets)")],
                figures=_figs(figures, ["magnification.png"]))
    return s


def _iou_section(r) -> Section:
    keys = list(r.by_iou)
    headers = ["IoU ≥", "macro F1", "micro F1", "accuracy of matched", "loc. P", "loc. R",
               "matched", "missed", "spurious", *[f"F1 {SHORT_OF(c)}" for c in CLASS_NAMES]]
    rows = []
    for k in keys:
        b = r.by_iou[k]
        rows.append([Cell(k), _c(b["macro_f1"], True), _c(b["micro_f1"], True),
                     _c(b["accuracy_matched"], True), _c(b["loc_precision"], True),
                     _c(b["loc_recall"], True), _c(b["n_matched"]), _c(b["n_missed"]),
                     _c(b["n_spurious"])] +
                    [_c(b["per_class_f1"][c], True) for c in CLASS_NAMES])
    return Section("By IoU threshold", "iou", tables=[Table(headers, rows)],
                   text=["The same matching at each requested IoU threshold."])


def SHORT_OF(c):
    from .plots import SHORT

    return SHORT[c]


def _sweep_section(r, figures) -> Section:
    sw = r.sweep
    rows = [[_c(x.conf, digits=2), _c(int(x.n_pred)), _c(x.macro_f1, True), _c(x.micro_f1, True),
             _c(x.accuracy_matched, True), _c(x.loc_precision, True), _c(x.loc_recall, True),
             _c(int(x.n_missed)), _c(int(x.n_spurious))] for x in sw.itertuples(index=False)]
    best = r.headline.get("best_conf_by_macro_f1")
    return Section("Confidence sweep", "sweep",
                   text=[f"Matching repeated at each confidence threshold (IoU "
                         f"{fmt(r.headline['iou'], 2)}). Best macro F1 at conf {fmt(best, 2)}."],
                   tables=[Table(["conf ≥", "predictions", "macro F1", "micro F1",
                                  "accuracy of matched", "loc. P", "loc. R", "missed", "spurious"],
                                 rows)],
                   figures=_figs(figures, ["sweep.png"]))


def _method_section(r) -> Section:
    s = Section("Inputs and method", "method")
    inp = r.inputs
    rows = [[Cell(k.replace("_", " ")), Cell(fmt(v) if isinstance(v, (int, float)) else str(v))]
            for k, v in inp.items()]
    rows += [[Cell(k.replace("_", " ")), Cell(", ".join(map(str, v)) if isinstance(v, list) else
                                              (fmt(v) if isinstance(v, float) else str(v)))]
             for k, v in r.settings.items()]
    s.tables.append(Table(["item", "value"], rows, css="narrow"))
    if r.mode == "detection":
        s.text.append("mAP: pycocotools COCOeval on the same truth and predictions (area range "
                      "'all'); per-class AP in the per-class table.")
    return s


# ------------------------------------------------------------------ markdown


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, sections: list[Section], subtitle: str = "") -> str:
    out = [f"# {title}", ""]
    if subtitle:
        out += [subtitle, ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.cards:
            out += [f"- **{lab}**: {val}" + (f" ({det})" if det else "") for lab, val, det in s.cards]
            out.append("")
        for t in s.text:
            out += [t, ""]
        for tb in s.tables:
            if tb.caption:
                out += [f"*{tb.caption}*", ""]
            out.append("| " + " | ".join(_md_escape(x) for x in tb.headers) + " |")
            out.append("|" + "|".join(["---"] + ["---:"] * (len(tb.headers) - 1)) + "|")
            for i, row in enumerate(tb.rows):
                cells = [_md_escape(c.text + (f" {c.sub}" if c.sub else "")) for c in row]
                if i in tb.emphasise_rows:
                    cells = [f"**{c}**" if c else c for c in cells]
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        for f in s.figures:
            out += [f"![{f.alt}]({f.name})", ""]
        if s.strip:
            out += [f"- {x['caption']}" for x in s.strip] + [""]
        elif s.anchor == "worst":
            out += ["(no images drawn)", ""]
    return "\n".join(out)


# ------------------------------------------------------------------ html

CSS = """
:root{--fg:#1d2330;--muted:#5b6576;--line:#dfe3ea;--bg:#fff;--head:#f3f5f9;--accent:#2a5bd7}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 color:var(--fg);background:#f7f8fb}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:var(--bg)}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:34px 0 10px;padding-bottom:4px;
 border-bottom:2px solid var(--line)}
.sub{color:var(--muted);margin:0 0 14px}
nav{font-size:13px;margin:8px 0 4px}nav a{color:var(--accent);margin-right:12px;text-decoration:none}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px;margin:12px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fbfcfe}
.card .l{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:24px;font-weight:650;margin:2px 0}
.card .d{font-size:12px;color:var(--muted)}
p{margin:6px 0 10px;max-width:900px}
.tw{overflow-x:auto;margin:8px 0 14px}
table{border-collapse:collapse;font-size:12.5px;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0;color:var(--muted)}
th,td{border:1px solid var(--line);padding:3px 7px;text-align:right;white-space:nowrap}
th{background:var(--head);font-weight:600}
thead th{white-space:normal;vertical-align:bottom;min-width:44px}
td .ci{color:var(--muted);font-size:11px}
td:first-child,th:first-child{text-align:left}
tr.sum td{font-weight:650;background:#f6f7fb}
table.confusion td{min-width:46px;text-align:center}
table.narrow td:last-child,table.narrow th:last-child{text-align:left;white-space:normal;max-width:640px}
figure{display:inline-block;margin:6px 12px 10px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid var(--line)}
figure.plot img{max-width:540px}
figcaption{font-size:12px;color:var(--muted);max-width:460px}
.strip{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px}
.strip figure{margin:0}
.strip img{width:100%}
.legend span{display:inline-block;padding:0 6px;margin-right:6px;border-radius:3px;color:#fff;font-size:12px}
@media print{body{background:#fff}main{padding:0}}
"""


def _heat_style(v: float | None) -> str:
    if v is None:
        return ""
    if v < 0:  # off-diagonal share of a confusion row: red the larger it is
        a = min(1.0, -v) ** 0.6 * 0.55
        return f' style="background:rgba(220,60,60,{a:.2f})"'
    # 0 -> red, 0.5 -> amber, 1 -> green, pale enough to read text on
    hue = 120 * max(0.0, min(1.0, v)) ** 2
    return f' style="background:hsl({hue:.0f},70%,88%)"'


def _html_table(tb: Table) -> str:
    e = html.escape
    cls = f' class="{tb.css}"' if tb.css else ""
    out = [f"<div class='tw'><table{cls}>"]
    if tb.caption:
        out.append(f"<caption>{e(tb.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th scope='col'>{e(hd)}</th>" for hd in tb.headers)
               + "</tr></thead><tbody>")
    for i, row in enumerate(tb.rows):
        tr = "<tr class='sum'>" if i in tb.emphasise_rows else "<tr>"
        cells = []
        for j, c in enumerate(row):
            if j == 0 and tb.first_col_header:
                cells.append(f"<th scope='row'>{e(c.text)}</th>")
            else:
                sub = f" <span class='ci'>{e(c.sub)}</span>" if c.sub else ""
                cells.append(f"<td{_heat_style(c.heat)}>{e(c.text)}{sub}</td>")
        out.append(tr + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def render_html(title: str, sections: list[Section], subtitle: str = "") -> str:
    e = html.escape
    nav = " ".join(f"<a href='#{s.anchor}'>{e(s.title)}</a>" for s in sections)
    body = [f"<h1>{e(title)}</h1>", f"<p class='sub'>{e(subtitle)}</p>" if subtitle else "",
            f"<nav>{nav}</nav>"]
    for s in sections:
        body.append(f"<section id='{s.anchor}'><h2>{e(s.title)}</h2>")
        if s.cards:
            body.append("<div class='cards'>" + "".join(
                f"<div class='card'><div class='l'>{e(lab)}</div><div class='v'>{e(val)}</div>"
                f"<div class='d'>{e(det)}</div></div>" for lab, val, det in s.cards) + "</div>")
        for t in s.text:
            body.append(f"<p>{e(t)}</p>")
        if s.anchor == "worst":
            body.append("<p class='legend'><span style='background:#3cc83c'>true cell</span>"
                        "<span style='background:#1e96e6'>right</span>"
                        "<span style='background:#ff9600'>wrong class</span>"
                        "<span style='background:#e62828'>spurious</span>"
                        "<span style='background:#c828c8'>missed</span></p>")
        for tb in s.tables:
            body.append(_html_table(tb))
        for f in s.figures:
            b64 = base64.b64encode(f.png).decode("ascii")
            body.append(f"<figure class='plot'><img alt='{e(f.alt)}' src='data:image/png;base64,{b64}'>"
                        f"<figcaption>{e(f.alt)}</figcaption></figure>")
        if s.strip:
            body.append("<div class='strip'>")
            for x in s.strip:
                b64 = base64.b64encode(x["jpeg"]).decode("ascii")
                body.append(f"<figure><img alt='{e(x['image'])}' "
                            f"src='data:image/jpeg;base64,{b64}'>"
                            f"<figcaption>{e(x['caption'])}</figcaption></figure>")
            body.append("</div>")
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>\n"
            + "\n".join(body) + "\n</main></body></html>\n")
