"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const POLL_MS = 1000;
  // slower retries while the server is unreachable, so a stopped server is not hammered
  const POLL_RETRY_MS = 5000;
  const MIN_BOX_PX = 3;
  // used only if /api/info is unreachable or lacks a colour
  const FALLBACK_CLASSES = ["basophil", "eosinophil", "erythroblast", "ig",
    "lymphocyte", "monocyte", "neutrophil", "platelet"];
  const FALLBACK_PALETTE = ["#8e24aa", "#f57c00", "#c62828", "#2e7d32", "#1565c0",
    "#00838f", "#37474f", "#d81b60", "#b71c1c"];

  const state = {
    classes: FALLBACK_CLASSES.slice(),
    red: "rbc",
    colours: {},
    batches: [],
    batchId: null,
    batch: null,
    images: [],
    imageId: null,
    imageStatus: null,
    cells: [],
    cellId: null,
    hidden: new Set(),
    filter: "",
    sort: { key: "id", dir: 1 },
    drawing: false,
    drag: null,
    draft: null,
    busy: false,
    uploading: false,
    pollTimer: null,
    offline: false,
    messageTimer: null,
  };

  const el = {};

  // ---------- small helpers ----------

  function byId(id) { return document.getElementById(id); }

  function make(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "className") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k in node && typeof v !== "string") node[k] = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of [].concat(children)) {
      if (c !== null && c !== undefined) node.append(c);
    }
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  function enc(x) { return encodeURIComponent(String(x)); }

  function fixed(x, digits = 2) {
    return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "—";
  }

  function magnification(x) {
    return typeof x === "number" && Number.isFinite(x) ? `×${x.toFixed(2)}` : "—";
  }

  function percent(part, whole) {
    return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : "—";
  }

  function plural(n, word, many = word + "s") {
    return `${n} ${n === 1 ? word : many}`;
  }

  // created times carry no zone: they are the server's local time, which is this computer's
  function formatTime(iso, short = false) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const opts = { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
    if (!short || d.getFullYear() !== new Date().getFullYear()) opts.year = "numeric";
    return d.toLocaleString(undefined, opts);
  }

  function colourOf(cls) {
    if (state.colours[cls]) return state.colours[cls];
    const all = state.classes.concat([state.red]);
    const i = all.indexOf(cls);
    return FALLBACK_PALETTE[(i >= 0 ? i : all.length) % FALLBACK_PALETTE.length];
  }

  function batchLabel(b) {
    return (b && b.name && String(b.name).trim()) || `Batch ${b ? b.id : ""}`;
  }

  function isActive(b) { return !!b && (b.status === "queued" || b.status === "running"); }

  function currentImage() {
    return state.images.find((im) => String(im.id) === String(state.imageId)) || null;
  }

  function currentCell() {
    return state.cells.find((c) => c.id === state.cellId) || null;
  }

  function isEdited(c) { return !!c.corrected || c.source === "added"; }

  // ---------- API ----------

  class ApiError extends Error {}

  function errorText(status, data) {
    if (data && typeof data.error === "string" && data.error.trim()) return oneLine(data.error);
    // the framework's own errors (unknown route, bad request body) come as {"detail": ...}
    if (data && typeof data.detail === "string") return oneLine(data.detail);
    if (status === 0) return "The mixmag server does not answer. Is `mixmag serve` still running?";
    return `The server could not do that (HTTP ${status}).`;
  }

  // server messages are meant to be one line; never show more than that
  function oneLine(s) {
    const line = String(s).split("\n")[0].trim();
    return line.length > 400 ? line.slice(0, 400) + "…" : line;
  }

  async function api(method, path, body) {
    const opts = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(errorText(0, null));
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) throw new ApiError(errorText(res.status, data));
    return data || {};
  }

  function describeError(e) {
    return e instanceof ApiError ? e.message : "Something went wrong in the page; reload it to continue.";
  }

  // ---------- messages ----------

  function showMessage(kind, text, details = []) {
    clearTimeout(state.messageTimer);
    const box = el.message;
    box.className = `message ${kind}`;
    box.replaceChildren();
    const body = make("div", { className: "message-body" }, [make("p", { text })]);
    if (details.length) {
      body.append(make("ul", {}, details.map((d) => make("li", { text: d }))));
    }
    const close = make("button", { type: "button", className: "button link", text: "Dismiss" });
    close.addEventListener("click", hideMessage);
    box.append(body, close);
    box.hidden = false;
    // errors stay until read; confirmations fade on their own
    if (kind === "ok") state.messageTimer = setTimeout(hideMessage, 6000);
  }

  function hideMessage() {
    clearTimeout(state.messageTimer);
    el.message.hidden = true;
    el.message.replaceChildren();
  }

  function reportError(e) {
    if (!(e instanceof ApiError)) console.error(e);
    showMessage("error", describeError(e));
  }

  // ---------- location.hash ----------

  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    return { b: p.get("b"), i: p.get("i") };
  }

  // replaceState: picking images should not fill the back button's history
  function writeHash() {
    const p = new URLSearchParams();
    if (state.batchId) p.set("b", state.batchId);
    if (state.batchId && state.imageId !== null) p.set("i", state.imageId);
    const h = p.toString();
    if (location.hash.replace(/^#/, "") === h) return;
    history.replaceState(null, "", h ? `#${h}` : location.pathname + location.search);
  }

  // ---------- keyed list updates ----------

  // updates list items in place so that focus and hover survive the 1 s polling
  function syncList(list, items, attr, build, update) {
    const old = new Map();
    for (const child of Array.from(list.children)) old.set(child.getAttribute(attr), child);
    let prev = null;
    for (const item of items) {
      const key = String(item.id);
      let node = old.get(key);
      if (node) old.delete(key);
      else node = build(item);
      update(node, item);
      const want = prev ? prev.nextSibling : list.firstChild;
      if (node !== want) list.insertBefore(node, want);
      prev = node;
    }
    for (const node of old.values()) node.remove();
  }

  // ---------- header ----------

  function renderModels(info) {
    if (!info) {
      el.models.textContent = "Model information is not available.";
      return;
    }
    const m = info.models || {};
    const parts = [];
    if (m.detector) parts.push(`Detector: ${m.detector}`);
    if (m.classifier) parts.push(`Classifier: ${m.classifier}`);
    if (info.version) parts.push(`mixmag ${info.version}`);
    el.models.textContent = parts.join(" · ");
  }

  // ---------- upload ----------

  function describeChosen(files) {
    if (!files.length) return "";
    const names = files.slice(0, 3).map((f) => f.name).join(", ");
    const more = files.length > 3 ? ` and ${files.length - 3} more` : "";
    return `${plural(files.length, "file")} chosen: ${names}${more}`;
  }

  function postForm(form, onProgress) {
    // XMLHttpRequest rather than fetch: only it reports upload progress for large zips
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/batches");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener("load", () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        resolve({ status: xhr.status, data });
      });
      xhr.addEventListener("error", () => resolve({ status: 0, data: null }));
      xhr.addEventListener("abort", () => resolve({ status: 0, data: null }));
      xhr.send(form);
    });
  }

  async function upload(files) {
    if (state.uploading) return;
    if (!files.length) {
      showMessage("error", "Choose or drop at least one image or .zip file first.");
      return;
    }
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    const name = el.batchName.value.trim();
    if (name) form.append("name", name);

    state.uploading = true;
    el.uploadButton.disabled = true;
    el.uploadButton.textContent = "Uploading…";
    el.uploadProgress.hidden = false;
    el.uploadProgress.value = 0;
    showMessage("info", `Uploading ${plural(files.length, "file")}…`);
    try {
      const { status, data } = await postForm(form, (f) => { el.uploadProgress.value = Math.round(f * 100); });
      const rejected = (data && Array.isArray(data.rejected) ? data.rejected : [])
        .map((r) => `${r.file}: ${oneLine(r.error || "not used")}`);
      if (status < 200 || status >= 300 || !data || !data.batch) {
        const text = errorText(status, data);
        // the error line may already name the rejected files; list only the others
        showMessage("error", text, rejected.filter((r) => !text.includes(r)));
        return;
      }
      const b = data.batch;
      const text = `“${batchLabel(b)}” created with ${plural(b.n_images || 0, "image")}.`;
      if (rejected.length) {
        showMessage("warn", `${text} ${plural(rejected.length, "file was", "files were")} not used:`, rejected);
      } else {
        showMessage("ok", text);
      }
      el.fileInput.value = "";
      el.chosenFiles.textContent = "";
      el.batchName.value = "";
      await refreshBatches();
      await selectBatch(b.id, null);
      ensurePolling();
    } catch (e) {
      reportError(e);
    } finally {
      state.uploading = false;
      el.uploadButton.disabled = false;
      el.uploadButton.textContent = "Upload";
      el.uploadProgress.hidden = true;
    }
  }

  function bindUpload() {
    el.fileInput.addEventListener("change", () => {
      el.chosenFiles.textContent = describeChosen(Array.from(el.fileInput.files));
    });
    byId("upload-form").addEventListener("submit", (e) => {
      e.preventDefault();
      upload(Array.from(el.fileInput.files));
    });

    // a counter, because dragleave also fires when moving over the zone's own children
    let depth = 0;
    const zone = el.dropZone;
    zone.addEventListener("dragenter", (e) => {
      e.preventDefault();
      depth += 1;
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragover", (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      zone.classList.remove("dragging");
      const files = Array.from((e.dataTransfer && e.dataTransfer.files) || []);
      el.chosenFiles.textContent = describeChosen(files);
      upload(files);
    });
    // a file dropped just outside the zone would otherwise replace the page with the image
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
  }

  // ---------- batches ----------

  async function refreshBatches() {
    const data = await api("GET", "/api/batches");
    state.batches = Array.isArray(data.batches) ? data.batches : [];
    const sel = state.batches.find((b) => b.id === state.batchId);
    // the list is fresher than the last detail call while a batch runs
    if (sel && state.batch) state.batch = Object.assign({}, state.batch, sel);
    renderBatches();
    if (state.batch) renderBatchHead();
  }

  function buildBatchItem(b) {
    const button = make("button", { type: "button", className: "batch-button" }, [
      make("span", { className: "batch-top" }, [
        make("span", { className: "batch-name" }),
        make("span", { className: "status" }),
      ]),
      make("span", { className: "batch-line" }, [
        make("span", { className: "batch-time" }),
        make("span", { className: "batch-count" }),
      ]),
      make("progress", { max: 1, value: 0 }),
      make("span", { className: "batch-error" }),
    ]);
    button.addEventListener("click", () => {
      selectBatch(b.id, null).catch(reportError);
    });
    return make("li", { className: "batch", "data-batch-id": b.id }, [button]);
  }

  function updateBatchItem(li, b) {
    const n = b.n_images || 0;
    const done = Math.min(b.n_done || 0, n);
    const button = li.firstElementChild;
    li.querySelector(".batch-name").textContent = batchLabel(b);
    li.querySelector(".batch-time").textContent = formatTime(b.created, true);
    const status = li.querySelector(".status");
    status.textContent = b.status;
    status.className = `status status-${b.status}`;
    let count = `${done} / ${plural(n, "image")}`;
    if (b.status === "done" || b.n_cells) count += ` · ${plural(b.n_cells || 0, "cell")}`;
    li.querySelector(".batch-count").textContent = count;
    const bar = li.querySelector("progress");
    bar.max = Math.max(n, 1);
    bar.value = done;
    bar.setAttribute("aria-label", `${done} of ${n} images processed`);
    const err = li.querySelector(".batch-error");
    err.textContent = b.error ? oneLine(b.error) : "";
    err.hidden = !b.error;
    const selected = b.id === state.batchId;
    li.classList.toggle("selected", selected);
    if (selected) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }

  function renderBatches() {
    syncList(el.batchList, state.batches, "data-batch-id", buildBatchItem, updateBatchItem);
    el.noBatches.hidden = state.batches.length > 0;
  }

  async function selectBatch(id, imageId) {
    const changed = id !== state.batchId;
    if (changed) {
      state.batchId = id;
      state.batch = state.batches.find((b) => b.id === id) || null;
      state.images = [];
      state.imageId = null;
      state.imageStatus = null;
      state.cells = [];
      state.cellId = null;
      state.draft = null;
      setDrawing(false);
      renderBatches();
      renderLook();
    }
    writeHash();
    await loadBatchDetail();
    if (id !== state.batchId) return;
    const wanted = imageId !== null && imageId !== undefined
      ? state.images.find((im) => String(im.id) === String(imageId)) : null;
    if (wanted) {
      await selectImage(wanted.id);
    } else if (changed || !currentImage()) {
      const first = state.images.find((im) => im.status === "done") || state.images[0];
      if (first) await selectImage(first.id);
      else renderLook();
    }
  }

  async function loadBatchDetail() {
    const bid = state.batchId;
    if (!bid) return;
    const data = await api("GET", `/api/batches/${enc(bid)}`);
    if (bid !== state.batchId) return;
    state.batch = data.batch || state.batch;
    state.images = Array.isArray(data.images) ? data.images : [];
    renderBatchHead();
    renderImages();
    renderCounts();
    // the shown image may just have been processed: fetch its cells once
    const img = currentImage();
    if (img && img.status !== state.imageStatus) {
      state.imageStatus = img.status;
      renderViewer();
      if (img.status === "done") await loadCells();
    }
  }

  // ---------- polling ----------

  function anyActive() { return state.batches.some(isActive); }

  function ensurePolling() {
    if (state.pollTimer === null && anyActive()) state.pollTimer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    state.pollTimer = null;
    const wasActive = isActive(state.batches.find((b) => b.id === state.batchId));
    let delay = POLL_MS;
    try {
      await refreshBatches();
      const sel = state.batches.find((b) => b.id === state.batchId);
      // one more detail call after the batch finishes, to get its final images and counts
      if (sel && (wasActive || isActive(sel))) await loadBatchDetail();
      if (state.offline) {
        state.offline = false;
        showMessage("ok", "The server answers again.");
      }
    } catch (e) {
      state.offline = true;
      reportError(e);
      delay = POLL_RETRY_MS;
    }
    if (anyActive() || state.offline) state.pollTimer = setTimeout(poll, delay);
  }

  // ---------- the selected batch ----------

  function renderLook() {
    const has = !!state.batchId;
    el.look.hidden = !has;
    el.welcome.hidden = has;
    el.imagesPanel.hidden = !has;
    if (!has) return;
    renderBatchHead();
    renderImages();
    renderViewer();
    renderToggles();
    renderOverlay();
    renderTable();
    renderCellPanel();
    renderCounts();
  }

  function renderBatchHead() {
    const b = state.batch;
    if (!b) return;
    el.batchTitle.textContent = batchLabel(b);
    const parts = [
      `created ${formatTime(b.created)}`,
      `${b.n_done || 0} of ${plural(b.n_images || 0, "image")} processed`,
      plural(b.n_cells || 0, "cell"),
    ];
    if (b.n_red_cells !== null && b.n_red_cells !== undefined) parts.push(plural(b.n_red_cells, "red cell"));
    parts.push(plural(b.corrections || 0, "correction"));
    el.batchMeta.replaceChildren(
      make("span", { className: `status status-${b.status}`, text: b.status }),
      ` ${parts.join(" · ")}`,
    );
    if (b.error) el.batchMeta.append(make("span", { className: "batch-error", text: ` — ${oneLine(b.error)}` }));
    for (const a of document.querySelectorAll("a[data-download]")) {
      a.href = `/api/batches/${enc(b.id)}/download/${enc(a.dataset.download)}`;
    }
  }

  function buildImageItem(im) {
    const button = make("button", { type: "button", className: "image-button" }, [
      make("span", { className: "image-name" }),
      make("span", { className: "image-meta" }),
      make("span", { className: "image-error" }),
    ]);
    button.addEventListener("click", () => {
      selectImage(im.id).catch(reportError);
    });
    return make("li", { className: "image-item", "data-image-id": im.id }, [button]);
  }

  function updateImageItem(li, im) {
    li.querySelector(".image-name").textContent = im.name;
    const meta = li.querySelector(".image-meta");
    if (im.status === "done") {
      let t = plural(im.n_cells || 0, "cell");
      if (im.n_red_cells !== null && im.n_red_cells !== undefined) t += ` · ${im.n_red_cells} red`;
      meta.replaceChildren(t);
    } else {
      meta.replaceChildren(make("span", { className: `status status-${im.status}`, text: im.status }));
    }
    const err = li.querySelector(".image-error");
    err.textContent = im.error ? oneLine(im.error) : "";
    err.hidden = !im.error;
    const selected = String(im.id) === String(state.imageId);
    li.classList.toggle("selected", selected);
    const button = li.firstElementChild;
    if (selected) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }

  function renderImages() {
    syncList(el.imageList, state.images, "data-image-id", buildImageItem, updateImageItem);
    const n = state.images.length;
    el.imagesTitle.textContent = n ? `Images (${n})` : "Images";
  }

  async function selectImage(iid) {
    state.imageId = iid;
    state.cells = [];
    state.cellId = null;
    state.draft = null;
    setDrawing(false);
    const img = currentImage();
    state.imageStatus = img ? img.status : null;
    writeHash();
    renderLook();
    if (img && img.status === "done") await loadCells();
  }

  async function loadCells() {
    const bid = state.batchId;
    const iid = state.imageId;
    if (!bid || iid === null) return;
    const data = await api("GET", `/api/batches/${enc(bid)}/images/${enc(iid)}/cells`);
    if (bid !== state.batchId || String(iid) !== String(state.imageId)) return;
    state.cells = Array.isArray(data.cells) ? data.cells : [];
    if (state.cellId !== null && !currentCell()) state.cellId = null;
    renderToggles();
    renderOverlay();
    renderTable();
    renderCellPanel();
    renderCounts();
  }

  // ---------- the image and its boxes ----------

  function imageSize() {
    const im = currentImage();
    const w = (im && im.width) || el.image.naturalWidth || 1;
    const h = (im && im.height) || el.image.naturalHeight || 1;
    return [w, h];
  }

  function renderViewer() {
    const im = currentImage();
    el.stage.hidden = !im;
    if (!im) {
      el.imageTitle.textContent = "Image";
      el.image.removeAttribute("src");
      setImageState(state.images.length ? "Pick an image from the list." : "This batch has no images yet.");
      return;
    }
    el.imageTitle.textContent = im.name;
    const src = `/api/batches/${enc(state.batchId)}/images/${enc(im.id)}/file`;
    if (el.image.getAttribute("src") !== src) el.image.src = src;
    el.image.alt = `Smear image ${im.name}`;
    const [w, h] = imageSize();
    el.overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
    if (im.status === "failed") {
      setImageState(`This image could not be processed: ${oneLine(im.error || "unknown error")}`, "error");
    } else if (im.status !== "done") {
      setImageState(`This image is ${im.status === "queued" ? "waiting to be processed" : im.status}…`);
    } else if (!state.cells.length && im.n_cells === 0) {
      setImageState("No cells were found in this image. Use “Draw missing cell” to add any.");
    } else {
      setImageState(null);
    }
    el.drawButton.disabled = im.status !== "done";
  }

  function setImageState(text, kind = "") {
    el.imageState.hidden = !text;
    el.imageState.textContent = text || "";
    el.imageState.className = `image-state ${kind}`;
  }

  function shownClasses() {
    const list = state.classes.slice();
    const b = state.batch || {};
    const redKnown = state.cells.some((c) => c.class_name === state.red)
      || (b.counts && b.counts[state.red] !== undefined)
      || (b.n_red_cells !== null && b.n_red_cells !== undefined);
    if (redKnown) list.push(state.red);
    // a class the page does not know still gets a toggle, so no box is beyond reach
    for (const c of state.cells) if (!list.includes(c.class_name)) list.push(c.class_name);
    return list;
  }

  function renderToggles() {
    const fs = el.toggles;
    const legend = fs.querySelector("legend");
    const counts = {};
    for (const c of state.cells) counts[c.class_name] = (counts[c.class_name] || 0) + 1;
    const items = shownClasses().map((cls) => {
      const box = make("input", { type: "checkbox", "data-class": cls });
      box.checked = !state.hidden.has(cls);
      box.addEventListener("change", () => {
        if (box.checked) state.hidden.delete(cls);
        else state.hidden.add(cls);
        renderOverlay();
        renderTable();
      });
      const swatch = make("span", { className: "swatch", "aria-hidden": "true" });
      swatch.style.background = colourOf(cls);
      return make("label", { className: "toggle" }, [
        box, swatch, make("span", { text: cls }),
        make("span", { className: "toggle-count", text: String(counts[cls] || 0) }),
      ]);
    });
    fs.replaceChildren(legend, ...items);
  }

  function visibleCells() {
    return state.cells.filter((c) => !state.hidden.has(c.class_name));
  }

  function renderOverlay() {
    const [w, h] = imageSize();
    el.overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
    // larger boxes first, so a platelet inside a big cell's box stays clickable
    const cells = visibleCells().slice().sort((a, b) => area(b) - area(a));
    const sel = cells.findIndex((c) => c.id === state.cellId);
    if (sel >= 0) cells.push(cells.splice(sel, 1)[0]);
    const nodes = cells.map((c) => {
      const r = svg("rect", {
        class: `cell-box${isEdited(c) ? " edited" : ""}${c.id === state.cellId ? " selected" : ""}`,
        "data-cell-id": c.id,
        "data-class": c.class_name,
        x: Math.min(c.x1, c.x2),
        y: Math.min(c.y1, c.y2),
        width: Math.abs(c.x2 - c.x1),
        height: Math.abs(c.y2 - c.y1),
      });
      r.style.stroke = colourOf(c.class_name);
      r.style.fill = colourOf(c.class_name);
      return r;
    });
    el.overlay.replaceChildren(...nodes);
    if (state.draft) el.overlay.append(draftRect(state.draft));
  }

  function area(c) { return Math.abs((c.x2 - c.x1) * (c.y2 - c.y1)); }

  function draftRect(b) {
    return svg("rect", {
      class: "draft-box",
      x: Math.min(b.x1, b.x2),
      y: Math.min(b.y1, b.y2),
      width: Math.abs(b.x2 - b.x1),
      height: Math.abs(b.y2 - b.y1),
    });
  }

  function showTooltip(cell, clientX, clientY) {
    const t = el.tooltip;
    const rows = [
      ["class", cell.class_name],
      ["score", fixed(cell.score)],
      ["det_conf", fixed(cell.det_conf)],
      ["magnification", magnification(cell.magnification_est)],
    ];
    if (cell.corrected && cell.original_class) rows.push(["model said", cell.original_class]);
    if (cell.source === "added") rows.push(["source", "drawn by hand"]);
    t.replaceChildren(...rows.map(([k, v]) => make("div", {}, [make("span", { text: k }), make("b", { text: v })])));
    t.hidden = false;
    // keep the tooltip inside the window near the right and bottom edges
    const pad = 14;
    const { width, height } = t.getBoundingClientRect();
    let x = clientX + pad;
    let y = clientY + pad;
    if (x + width > window.innerWidth - 4) x = clientX - width - pad;
    if (y + height > window.innerHeight - 4) y = clientY - height - pad;
    t.style.left = `${Math.max(4, x)}px`;
    t.style.top = `${Math.max(4, y)}px`;
  }

  function hideTooltip() { el.tooltip.hidden = true; }

  function cellFromEvent(e) {
    const r = e.target.closest ? e.target.closest("rect.cell-box") : null;
    if (!r) return null;
    const id = Number(r.getAttribute("data-cell-id"));
    return state.cells.find((c) => c.id === id) || null;
  }

  function toImagePoint(e) {
    const box = el.overlay.getBoundingClientRect();
    const [w, h] = imageSize();
    const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
    return {
      x: clamp(((e.clientX - box.left) / Math.max(box.width, 1)) * w, w),
      y: clamp(((e.clientY - box.top) / Math.max(box.height, 1)) * h, h),
    };
  }

  function bindOverlay() {
    const o = el.overlay;
    o.addEventListener("pointermove", (e) => {
      if (state.drag) {
        const p = toImagePoint(e);
        state.drag.x2 = p.x;
        state.drag.y2 = p.y;
        const r = o.querySelector("rect.draft-box");
        if (r) r.replaceWith(draftRect(state.drag));
        return;
      }
      const cell = state.drawing ? null : cellFromEvent(e);
      if (cell) showTooltip(cell, e.clientX, e.clientY);
      else hideTooltip();
    });
    o.addEventListener("pointerleave", hideTooltip);
    o.addEventListener("click", (e) => {
      if (state.drawing) return;
      const cell = cellFromEvent(e);
      if (cell) selectCell(cell.id, { scrollRow: true });
    });

    o.addEventListener("pointerdown", (e) => {
      if (!state.drawing || e.button !== 0) return;
      e.preventDefault();
      const p = toImagePoint(e);
      state.drag = { x1: p.x, y1: p.y, x2: p.x, y2: p.y };
      state.draft = null;
      renderOverlay();
      o.append(draftRect(state.drag));
      try { o.setPointerCapture(e.pointerId); } catch (err) { /* capture is a nicety */ }
    });
    const finish = (e) => {
      if (!state.drag) return;
      const p = toImagePoint(e);
      const d = state.drag;
      d.x2 = p.x;
      d.y2 = p.y;
      state.drag = null;
      const box = {
        x1: Math.min(d.x1, d.x2), y1: Math.min(d.y1, d.y2),
        x2: Math.max(d.x1, d.x2), y2: Math.max(d.y1, d.y2),
      };
      if (box.x2 - box.x1 < MIN_BOX_PX || box.y2 - box.y1 < MIN_BOX_PX) {
        renderOverlay();
        return;
      }
      setDrawing(false);
      state.cellId = null;
      state.draft = box;
      renderOverlay();
      renderTable();
      renderCellPanel();
      el.cellClass.focus();
    };
    o.addEventListener("pointerup", finish);
    o.addEventListener("pointercancel", () => {
      state.drag = null;
      renderOverlay();
    });
  }

  function setDrawing(on) {
    state.drawing = on;
    state.drag = null;
    el.stage.classList.toggle("drawing", on);
    el.drawButton.setAttribute("aria-pressed", on ? "true" : "false");
    el.drawButton.textContent = on ? "Stop drawing" : "Draw missing cell";
    el.drawHint.hidden = !on;
    if (on) hideTooltip();
  }

  // ---------- the cells table ----------

  const SORTERS = {
    id: (c) => c.id,
    class_name: (c) => c.class_name,
    score: (c) => c.score,
    magnification_est: (c) => c.magnification_est,
    x1: (c) => c.x1,
    y1: (c) => c.y1,
    x2: (c) => c.x2,
    y2: (c) => c.y2,
    edit: (c) => (c.corrected ? 2 : c.source === "added" ? 1 : 0),
  };

  function compareValues(a, b) {
    const na = a === null || a === undefined;
    const nb = b === null || b === undefined;
    if (na || nb) return na && nb ? 0 : na ? 1 : -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b));
  }

  function tableCells() {
    const q = state.filter.trim().toLowerCase();
    const key = SORTERS[state.sort.key] || SORTERS.id;
    const dir = state.sort.dir;
    return visibleCells()
      .filter((c) => !q || String(c.class_name).toLowerCase().includes(q))
      .sort((a, b) => {
        const va = key(a);
        const vb = key(b);
        // missing values stay at the bottom whichever way the column is sorted
        if (va === null || va === undefined || vb === null || vb === undefined) return compareValues(va, vb);
        return dir * compareValues(va, vb) || a.id - b.id;
      });
  }

  function editNote(c) {
    if (c.corrected && c.original_class && c.original_class !== c.class_name) return `✎ was ${c.original_class}`;
    if (c.source === "added") return "✎ drawn";
    if (c.corrected) return "✎";
    return "";
  }

  function renderTable() {
    const tbody = el.cellsTable.tBodies[0];
    const rows = tableCells().map((c) => {
      const swatch = make("span", { className: "swatch", "aria-hidden": "true" });
      swatch.style.background = colourOf(c.class_name);
      const tr = make("tr", {
        "data-cell-id": c.id,
        tabindex: "0",
        className: [c.id === state.cellId ? "selected" : "", isEdited(c) ? "edited" : ""].join(" ").trim() || null,
        "aria-selected": c.id === state.cellId ? "true" : "false",
      }, [
        make("td", { className: "num", text: String(c.id) }),
        make("td", { className: "class-name" }, [swatch, c.class_name]),
        make("td", { className: "num", text: fixed(c.score) }),
        make("td", { className: "num", text: magnification(c.magnification_est) }),
        make("td", { className: "num", text: String(Math.round(c.x1)) }),
        make("td", { className: "num", text: String(Math.round(c.y1)) }),
        make("td", { className: "num", text: String(Math.round(c.x2)) }),
        make("td", { className: "num", text: String(Math.round(c.y2)) }),
        make("td", { className: "edit-note", text: editNote(c) }),
      ]);
      return tr;
    });
    if (!rows.length) {
      const im = currentImage();
      let text = "No cells to show.";
      if (!im) text = "No image selected.";
      else if (im.status !== "done") text = "Cells appear here once the image is processed.";
      else if (state.cells.length) text = "No cells match the filter or the shown classes.";
      rows.push(make("tr", { className: "empty-row" }, [make("td", { colspan: "9", text })]));
    }
    tbody.replaceChildren(...rows);
    const shown = rows.filter((r) => r.hasAttribute("data-cell-id")).length;
    el.cellsShown.textContent = state.cells.length ? `${shown} of ${plural(state.cells.length, "cell")}` : "";
    for (const th of el.cellsTable.tHead.rows[0].cells) {
      const k = th.dataset.sort;
      if (k === state.sort.key) th.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
  }

  function bindTable() {
    el.cellsTable.tHead.addEventListener("click", (e) => {
      const th = e.target.closest("th[data-sort]");
      if (!th) return;
      const key = th.dataset.sort;
      if (state.sort.key === key) state.sort.dir = -state.sort.dir;
      else state.sort = { key, dir: 1 };
      renderTable();
    });
    const tbody = el.cellsTable.tBodies[0];
    tbody.addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-cell-id]");
      if (tr) selectCell(Number(tr.dataset.cellId), { focusRow: true });
    });
    tbody.addEventListener("keydown", (e) => {
      const tr = e.target.closest("tr[data-cell-id]");
      if (!tr) return;
      let target = null;
      if (e.key === "Enter" || e.key === " ") target = tr;
      else if (e.key === "ArrowDown") target = tr.nextElementSibling;
      else if (e.key === "ArrowUp") target = tr.previousElementSibling;
      if (!target || !target.hasAttribute("data-cell-id")) return;
      e.preventDefault();
      selectCell(Number(target.dataset.cellId), { focusRow: true });
    });
    el.filter.addEventListener("input", () => {
      state.filter = el.filter.value;
      renderTable();
    });
  }

  function scrollRowIntoView(tr) {
    // scroll only the table's own box, not the page, when a box on the image is clicked
    const wrap = el.tableWrap;
    const head = el.cellsTable.tHead.offsetHeight;
    const top = tr.offsetTop;
    const bottom = top + tr.offsetHeight;
    if (top - head < wrap.scrollTop) wrap.scrollTop = top - head;
    else if (bottom > wrap.scrollTop + wrap.clientHeight) wrap.scrollTop = bottom - wrap.clientHeight;
  }

  function selectCell(id, opts = {}) {
    state.draft = null;
    state.cellId = id;
    renderOverlay();
    renderTable();
    renderCellPanel();
    const tr = el.cellsTable.querySelector(`tbody tr[data-cell-id="${id}"]`);
    if (tr && (opts.scrollRow || opts.focusRow)) scrollRowIntoView(tr);
    if (tr && opts.focusRow) tr.focus({ preventScroll: true });
  }

  // ---------- the selected cell ----------

  function fillClassSelect(current, placeholder) {
    const options = [];
    if (placeholder) options.push(make("option", { value: "", text: "Pick a class…", disabled: true }));
    const all = state.classes.concat([state.red]);
    if (current && !all.includes(current)) all.push(current);
    for (const cls of all) {
      options.push(make("option", { value: cls, text: cls === state.red ? `${cls} (red cell)` : cls }));
    }
    el.cellClass.replaceChildren(...options);
    el.cellClass.value = current || "";
  }

  function renderCellPanel() {
    const cell = currentCell();
    const draft = state.draft;
    el.cellNone.hidden = !!(cell || draft);
    el.cellDetail.hidden = !cell;
    el.cellEdit.hidden = !(cell || draft);
    el.cellClass.disabled = state.busy;
    el.deleteCell.disabled = state.busy;
    if (draft) {
      el.cellTitle.textContent = "New cell";
      el.cellClassLabel.textContent = "Class of the new cell (choosing one adds it)";
      fillClassSelect("", true);
      el.deleteCell.hidden = true;
      el.cancelDraft.hidden = false;
      return;
    }
    el.deleteCell.hidden = false;
    el.cancelDraft.hidden = true;
    if (!cell) {
      el.cellTitle.textContent = "Selected cell";
      return;
    }
    const titleSwatch = make("span", { className: "swatch", "aria-hidden": "true" });
    titleSwatch.style.background = colourOf(cell.class_name);
    el.cellTitle.replaceChildren(titleSwatch, `${cell.class_name}`,
      make("span", { className: "cell-id", text: ` cell ${cell.id}` }));
    el.cellClassLabel.textContent = "Class";
    fillClassSelect(cell.class_name, false);

    const crop = `/api/cells/${enc(cell.id)}/crop`;
    if (el.cellCrop.getAttribute("src") !== crop) el.cellCrop.src = crop;
    el.cellCrop.alt = `Crop of cell ${cell.id}, ${cell.class_name}`;

    const w = Math.round(Math.abs(cell.x2 - cell.x1));
    const h = Math.round(Math.abs(cell.y2 - cell.y1));
    const facts = [
      ["Score", fixed(cell.score)],
      ["Detection", fixed(cell.det_conf)],
      ["Class conf.", fixed(cell.class_conf)],
      ["Magnification", magnification(cell.magnification_est)],
      ["Box", `${w} × ${h} px`],
      ["Source", cell.source === "added" ? "drawn by hand" : "model"],
    ];
    if (cell.corrected && cell.original_class) facts.push(["Model said", cell.original_class]);
    el.cellFacts.replaceChildren(...facts.flatMap(([k, v]) => [make("dt", { text: k }), make("dd", { text: v })]));

    const probs = Object.entries(cell.probs || {}).filter(([, p]) => typeof p === "number");
    probs.sort((a, b) => b[1] - a[1]);
    el.cellProbs.replaceChildren(...probs.map(([cls, p]) => {
      const bar = make("span", { className: "prob-bar" });
      bar.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
      bar.style.background = colourOf(cls);
      return make("li", {}, [
        make("span", { className: "prob-name", text: cls }),
        make("span", { className: "prob-track", "aria-hidden": "true" }, [bar]),
        make("span", { className: "prob-value", text: `${(p * 100).toFixed(1)}%` }),
      ]);
    }));
    el.cellProbsWrap.hidden = false;
    if (!probs.length) {
      el.cellProbs.replaceChildren(make("li", { className: "empty-note",
        text: cell.source === "added" ? "None: this cell was drawn by hand." : "None for this cell." }));
    }
  }

  function setBusy(on) {
    state.busy = on;
    el.cellClass.disabled = on;
    el.deleteCell.disabled = on;
    el.cancelDraft.disabled = on;
  }

  // after any edit the cells, counts and correction numbers all change on the server
  async function afterEdit() {
    await Promise.all([loadCells(), loadBatchDetail(), refreshBatches()]);
  }

  async function changeClass() {
    const value = el.cellClass.value;
    if (!value) return;
    if (state.draft) {
      await addDraft(value);
      return;
    }
    const cell = currentCell();
    if (!cell || cell.class_name === value) return;
    setBusy(true);
    try {
      const data = await api("PATCH", `/api/cells/${enc(cell.id)}`, { class_name: value });
      if (data.cell) Object.assign(cell, data.cell);
      showMessage("ok", `Cell ${cell.id} is now ${value}.`);
      await afterEdit();
    } catch (e) {
      reportError(e);
      el.cellClass.value = cell.class_name;
    } finally {
      setBusy(false);
    }
  }

  async function addDraft(cls) {
    const d = state.draft;
    const round = (v) => Math.round(v * 10) / 10;
    setBusy(true);
    try {
      const data = await api("POST", `/api/batches/${enc(state.batchId)}/images/${enc(state.imageId)}/cells`, {
        x1: round(d.x1), y1: round(d.y1), x2: round(d.x2), y2: round(d.y2), class_name: cls,
      });
      state.draft = null;
      if (data.cell) {
        state.cells.push(data.cell);
        state.cellId = data.cell.id;
      }
      showMessage("ok", `Added a ${cls}.`);
      await afterEdit();
    } catch (e) {
      reportError(e);
      el.cellClass.value = "";
    } finally {
      setBusy(false);
      renderOverlay();
      renderTable();
      renderCellPanel();
    }
  }

  async function deleteCell() {
    const cell = currentCell();
    if (!cell) return;
    setBusy(true);
    try {
      await api("DELETE", `/api/cells/${enc(cell.id)}`);
      state.cells = state.cells.filter((c) => c.id !== cell.id);
      state.cellId = null;
      showMessage("ok", `Deleted cell ${cell.id} (${cell.class_name}).`);
      await afterEdit();
    } catch (e) {
      reportError(e);
    } finally {
      setBusy(false);
      renderOverlay();
      renderTable();
      renderCellPanel();
    }
    // the button just vanished with the panel; keep keyboard users in the table
    if (!currentCell()) el.filter.focus();
  }

  function cancelDraft() {
    state.draft = null;
    renderOverlay();
    renderCellPanel();
  }

  function bindCellPanel() {
    el.cellClass.addEventListener("change", () => { changeClass().catch(reportError); });
    el.deleteCell.addEventListener("click", () => { deleteCell().catch(reportError); });
    el.cancelDraft.addEventListener("click", cancelDraft);
    el.drawButton.addEventListener("click", () => {
      const im = currentImage();
      if (!im || im.status !== "done") return;
      const on = !state.drawing;
      if (on) {
        state.cellId = null;
        state.draft = null;
        renderOverlay();
        renderTable();
        renderCellPanel();
      }
      setDrawing(on);
    });
    document.addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      if (state.drawing || state.drag) {
        setDrawing(false);
        renderOverlay();
      } else if (state.draft) {
        cancelDraft();
      }
    });
  }

  // ---------- counts ----------

  function countsTable(counts, nRed, caption) {
    counts = counts || {};
    const total = state.classes.reduce((s, cls) => s + (Number(counts[cls]) || 0), 0);
    const rows = state.classes.map((cls) => {
      const n = Number(counts[cls]) || 0;
      const swatch = make("span", { className: "swatch", "aria-hidden": "true" });
      swatch.style.background = colourOf(cls);
      return make("tr", { className: n ? null : "zero" }, [
        make("th", { scope: "row" }, [swatch, cls]),
        make("td", { className: "num", text: String(n) }),
        make("td", { className: "num", text: percent(n, total) }),
      ]);
    });
    let red = counts[state.red];
    if (red === undefined || red === null) red = nRed;
    const known = red !== undefined && red !== null;
    return make("table", { className: "count-table" }, [
      make("caption", { className: "visually-hidden", text: caption }),
      make("thead", {}, [make("tr", {}, [
        make("th", { scope: "col", text: "class" }),
        make("th", { scope: "col", className: "num", text: "count" }),
        make("th", { scope: "col", className: "num", text: "%" }),
      ])]),
      make("tbody", {}, rows),
      make("tfoot", {}, [
        make("tr", { className: "total" }, [
          make("th", { scope: "row", text: "total" }),
          make("td", { className: "num", text: String(total) }),
          make("td", { className: "num", text: total ? "100%" : "—" }),
        ]),
        make("tr", { className: "red-row" }, [
          make("th", { scope: "row", text: "red cells" }),
          make("td", { className: "num", text: known ? String(red) : "—" }),
          make("td", { className: "num muted", text: known ? "apart" : "not counted" }),
        ]),
      ]),
    ]);
  }

  function renderCounts() {
    const im = currentImage();
    if (im && im.status === "done") {
      el.imageCounts.replaceChildren(countsTable(im.counts, im.n_red_cells, `Counts in ${im.name}`));
    } else {
      el.imageCounts.replaceChildren(make("p", { className: "empty-note",
        text: im ? "Not processed yet." : "No image selected." }));
    }
    const b = state.batch;
    if (b) {
      const nodes = [countsTable(b.counts, b.n_red_cells, `Counts in ${batchLabel(b)}`)];
      if (isActive(b)) {
        nodes.unshift(make("p", { className: "muted small",
          text: `So far: ${b.n_done || 0} of ${plural(b.n_images || 0, "image")}.` }));
      }
      el.batchCounts.replaceChildren(...nodes);
    } else {
      el.batchCounts.replaceChildren();
    }
  }

  // ---------- start ----------

  async function applyHash() {
    const { b, i } = readHash();
    if (!b) return false;
    if (!state.batches.some((x) => x.id === b)) {
      showMessage("error", `Batch ${b} is not on this server.`);
      return false;
    }
    if (b !== state.batchId || String(i) !== String(state.imageId)) await selectBatch(b, i);
    return true;
  }

  function grabElements() {
    const ids = {
      message: "message", models: "models", dropZone: "drop-zone", fileInput: "file-input",
      chosenFiles: "chosen-files", batchName: "batch-name", uploadButton: "upload-button",
      uploadProgress: "upload-progress", batchList: "batch-list", noBatches: "no-batches",
      imagesPanel: "images-panel", imagesTitle: "images-title", imageList: "image-list",
      look: "look", welcome: "welcome", batchTitle: "batch-title", batchMeta: "batch-meta",
      imageTitle: "image-title", drawButton: "draw-cell", toggles: "class-toggles",
      imageState: "image-state", stage: "stage", image: "image", overlay: "overlay",
      drawHint: "draw-hint", filter: "cell-filter", cellsShown: "cells-shown",
      cellsTable: "cells-table", cellTitle: "cell-title", cellNone: "cell-none",
      cellDetail: "cell-detail", cellCrop: "cell-crop", cellFacts: "cell-facts",
      cellProbsWrap: "cell-probs-wrap", cellProbs: "cell-probs", cellEdit: "cell-edit",
      cellClassLabel: "cell-class-label", cellClass: "cell-class", deleteCell: "delete-cell",
      cancelDraft: "cancel-draft", imageCounts: "image-counts", batchCounts: "batch-counts",
      tooltip: "tooltip",
    };
    for (const [k, id] of Object.entries(ids)) el[k] = byId(id);
    el.tableWrap = el.cellsTable.parentElement;
  }

  async function init() {
    grabElements();
    bindUpload();
    bindOverlay();
    bindTable();
    bindCellPanel();
    // the image may arrive after its sizes are needed, when the API gives none
    el.image.addEventListener("load", renderOverlay);
    el.image.addEventListener("error", () => {
      if (el.image.getAttribute("src")) setImageState("The image file could not be shown.", "error");
    });
    window.addEventListener("hashchange", () => { applyHash().catch(reportError); });

    let info = null;
    try {
      info = await api("GET", "/api/info");
      if (Array.isArray(info.classes) && info.classes.length) state.classes = info.classes;
      if (info.red_class) state.red = info.red_class;
      if (info.colours) state.colours = info.colours;
    } catch (e) {
      reportError(e);
    }
    renderModels(info);

    try {
      await refreshBatches();
    } catch (e) {
      reportError(e);
      renderBatches();
      return;
    }
    try {
      const fromHash = await applyHash();
      if (!fromHash && state.batches.length) await selectBatch(state.batches[0].id, null);
      if (!state.batchId) renderLook();
    } catch (e) {
      reportError(e);
    }
    ensurePolling();
  }

  document.addEventListener("DOMContentLoaded", () => { init().catch(reportError); });
})();
