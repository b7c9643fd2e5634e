// The simsearch inspection station. Plain JS, no build step, nothing from elsewhere (the page's
// Content-Security-Policy allows only this script). Text from the server is only ever set with textContent.
"use strict";

const TOKEN_KEY = "simsearch-token";
const POLL_MS = 2000;
const COLOURS = { good: "#2e7d32", defect: "#c62828", unlabelled: "#9e9e9e", line: "#1565c0", moved: "#ef6c00" };
let session = null;
let liveLatest = 0;
let liveTimer = null;
const blobUrls = new Map(); // exemplar id -> object URL of its thumbnail (fetched with the token)

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  const headers = Object.assign({ Authorization: `Bearer ${token}` }, options.headers || {});
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = Object.assign({}, options, { body: JSON.stringify(options.json) });
  }
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "omit", cache: "no-store" }));
  if (response.status === 401) {
    signOut("the token was refused (missing or wrong)");
    throw new ApiError(401, "missing or wrong bearer token");
  }
  if (!response.ok) {
    let detail = `${response.status}`;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return options.raw ? response : response.json();
}

function say(message, isError) {
  const status = $("status");
  status.textContent = message || "";
  status.classList.toggle("error", Boolean(isError));
}

function fmt(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits);
}

function pct(value) { return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)} %`; }

// -- sign in -------------------------------------------------------------------------------------------
function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  session = null;
  stopLive();
  $("app").hidden = true;
  $("nav").hidden = true;
  $("login").hidden = false;
  $("who").textContent = "";
  $("login-error").textContent = reason || "";
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    session = await api("/ui/api/session");
  } catch (error) {
    if (error.status !== 401) signOut(`cannot reach the server: ${error.message}`);
    return false;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("nav").hidden = false;
  $("login-error").textContent = "";
  $("who").textContent = `${session.who} · ${session.index} · generation ${session.generation}`;
  const history = session.history || {};
  $("history-warning").hidden = !history.warning;
  $("history-warning").textContent = history.warning || "";
  showView();
  return true;
}

async function openWithoutToken() {
  // A server started without --token-file answers without one; otherwise ask for it.
  const response = await fetch("/ui/api/session", { credentials: "omit", cache: "no-store" }).catch(() => null);
  if (response && response.ok) await signIn(""); else signOut("");
}

// -- views -----------------------------------------------------------------------------------------------
const VIEWS = { live: showLive, review: showReview, exemplars: showExemplars, threshold: showThreshold, drift: showDrift };

function currentView() {
  const name = location.hash.replace("#", "");
  return VIEWS[name] ? name : "live";
}

function showView() {
  if (!session) return;
  const name = currentView();
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${name}`;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === name);
  if (name !== "live") stopLive();
  say("");
  VIEWS[name]().catch((error) => say(error.message, true));
}

function verdictBadge(verdict) { return el("span", { class: `badge ${verdict}`, text: verdict }); }

function thumbImg(b64, alt) { return el("img", { class: "thumb", src: `data:image/jpeg;base64,${b64}`, alt }); }

function neighbourText(neighbour) {
  if (!neighbour) return "–";
  const type = neighbour.type ? ` ${neighbour.type}` : "";
  return `#${neighbour.id}${type} at ${fmt(neighbour.distance, 4)}`;
}

async function exemplarThumb(id) {
  if (blobUrls.has(id)) return blobUrls.get(id);
  try {
    const response = await api(`/ui/api/exemplars/${encodeURIComponent(id)}/thumb`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    blobUrls.set(id, url);
    return url;
  } catch (error) {
    return null;
  }
}

function exemplarFigure(neighbour, title) {
  const figure = el("figure", {}, el("figcaption", { text: `${title}: ${neighbourText(neighbour)}` }));
  if (!neighbour) return figure;
  figure.append(el("figcaption", { text: neighbour.path }));
  exemplarThumb(neighbour.id).then((url) => {
    figure.prepend(url ? el("img", { class: "thumb", src: url, alt: `exemplar ${neighbour.id}` })
                       : el("span", { class: "muted", text: "(no image on the server)" }));
  });
  return figure;
}

// -- live --------------------------------------------------------------------------------------------------
function liveRow(item) {
  const details = el("tr", { class: "details-row", hidden: "" });
  const button = el("button", { text: "details", class: "details-button" });
  button.addEventListener("click", () => toggleDetails(item, details, button));
  const row = el("tr", { dataset: { id: String(item.id) } },
    el("td", {}, thumbImg(item.thumb, item.name), el("div", { class: "muted", text: item.name })),
    el("td", {}, verdictBadge(item.verdict)),
    el("td", { class: "normalised", text: fmt(item.normalised) }),
    el("td", { text: fmt(item.score, 4) }),
    el("td", { text: neighbourText(item.nearest) }),
    el("td", { text: neighbourText(item.nearest_defect) }),
    el("td", { text: item.predicted_type || "–" }),
    el("td", {}, button));
  return [row, details];
}

function toggleDetails(item, details, button) {
  if (!details.hidden) { details.hidden = true; return; }
  details.hidden = false;
  if (details.childElementCount) return;
  const box = el("div", { class: "details" });
  const overlay = el("button", { text: "show heatmap and boxes" });
  overlay.disabled = !item.image_kept;
  overlay.title = item.image_kept ? "" : "the image is no longer kept by the server";
  overlay.addEventListener("click", async () => {
    overlay.disabled = true;
    try {
      const response = await api(`/ui/api/history/${item.id}/overlay`, { raw: true });
      const url = URL.createObjectURL(await response.blob());
      box.prepend(el("figure", {}, el("img", { class: "big overlay", src: url, alt: "heatmap overlay" }),
        el("figcaption", { text: "heatmap and boxes" })));
    } catch (error) { say(error.message, true); overlay.disabled = false; }
  });
  box.append(overlay, exemplarFigure(item.nearest, "nearest good"), exemplarFigure(item.nearest_defect, "nearest defect"));
  details.append(el("td", { colspan: "8" }, box));
}

async function pollLive() {
  const body = await api(`/ui/api/history?after=${liveLatest}`);
  const rows = $("live-rows");
  const fresh = document.createDocumentFragment();
  for (const item of body.items) for (const node of liveRow(item)) fresh.append(node);
  rows.prepend(fresh);
  liveLatest = Math.max(liveLatest, body.latest_id);
  while (rows.childElementCount > 2 * body.size) rows.lastElementChild.remove();
  $("live-count").textContent = `${rows.childElementCount / 2} of the last ${body.size} scored images, newest first`;
}

function stopLive() { if (liveTimer) { clearTimeout(liveTimer); liveTimer = null; } }

async function showLive() {
  stopLive();
  const tick = async () => {
    try { if ($("live-poll").checked) await pollLive(); } catch (error) { say(error.message, true); }
    if (session && currentView() === "live") liveTimer = setTimeout(tick, POLL_MS);
  };
  await tick();
}

// -- review ------------------------------------------------------------------------------------------------
function scoreLine(summary) {
  return `${summary.verdict} · normalised ${fmt(summary.normalised)} · score ${fmt(summary.score, 4)}` +
    (summary.predicted_type ? ` · looks like ${summary.predicted_type}` : "");
}

function reviewCard(item) {
  const card = el("div", { class: "card", dataset: { id: String(item.id) } });
  card.append(thumbImg(item.thumb, item.name),
    el("div", {}, el("div", { class: "name", text: item.name }), verdictBadge(item.verdict),
      el("span", { class: "before", text: ` ${scoreLine(item)}` })));
  const actions = el("div", { class: "actions" });
  card.append(actions);
  if (item.review) showReviewed(card, actions, item, item.review.after);
  else {
    const type = el("input", { type: "text", list: "type-list", placeholder: "defect type", class: "type" });
    actions.append(
      el("button", { text: "good", class: "good", onclick: () => teach(card, actions, item, "good") }),
      type,
      el("button", { text: "defect", class: "defect", onclick: () => teach(card, actions, item, "defect", type.value) }),
      el("button", { text: "skip", class: "skip", onclick: () => teach(card, actions, item, "skip") }));
  }
  return card;
}

function showReviewed(card, actions, item, after) {
  actions.replaceChildren();
  const review = item.review || {};
  const what = review.action === "defect" ? `defect${review.type ? ` (${review.type})` : ""}` : review.action;
  actions.append(el("span", { class: "result", text: after ? `${what} → new score: ${scoreLine(after)}` : what }),
    el("button", { text: "undo", class: "undo", onclick: () => undo(card, actions, item) }));
}

async function teach(card, actions, item, action, type) {
  for (const button of actions.querySelectorAll("button")) button.disabled = true;
  say(action === "skip" ? "skipping…" : `adding ${item.name} as ${action}…`);
  try {
    const body = await api(`/ui/api/history/${item.id}/review`, { method: "POST", json: { action, type: type || null } });
    Object.assign(item, body.item);
    showReviewed(card, actions, item, body.after || null);
    if (body.audit) prependAudit(body.audit);
    say(body.after ? `exemplar #${body.exemplar.id} added; the image now scores ${fmt(body.after.score, 4)} ` +
      `(was ${fmt(body.before.score, 4)})` : "skipped");
  } catch (error) {
    say(error.message, true);
    for (const button of actions.querySelectorAll("button")) button.disabled = false;
  }
}

async function undo(card, actions, item) {
  for (const button of actions.querySelectorAll("button")) button.disabled = true;
  try {
    const body = await api(`/ui/api/history/${item.id}/undo`, { method: "POST" });
    Object.assign(item, body.item);
    card.replaceWith(reviewCard(item));
    if (body.audit) prependAudit(body.audit);
    say(body.after ? `undone; the image scores ${fmt(body.after.score, 4)} again (${body.after.verdict})` : "undone");
  } catch (error) {
    say(error.message, true);
    for (const button of actions.querySelectorAll("button")) button.disabled = false;
  }
}

function auditText(entry) {
  const bits = [entry.action];
  if (entry.label) bits.push(entry.label);
  if (entry.type) bits.push(`(${entry.type})`);
  if (entry.exemplar !== undefined && entry.exemplar !== null) bits.push(`#${entry.exemplar}`);
  if (entry.image) bits.push(entry.image);
  if (entry.reason) bits.push(`“${entry.reason}”`);
  return bits.join(" ");
}

function auditScore(side) {
  if (!side) return "–";
  if ("threshold" in side) return `threshold ${fmt(side.threshold, 4)}`;
  if ("label" in side) return `#${side.exemplar} ${labelText(side.label, side.type)}`;
  return `${fmt(side.score, 4)} (${side.verdict})`;
}

function auditRow(entry) {
  return el("tr", {}, el("td", { text: (entry.time || "").replace("T", " ").replace("+00:00", "Z") }),
    el("td", { text: entry.who || "" }), el("td", { text: auditText(entry) }),
    el("td", { text: auditScore(entry.before) }), el("td", { text: auditScore(entry.after) }));
}

function prependAudit(entry) { $("audit-rows").prepend(auditRow(entry)); }

async function showReview() {
  const body = await api("/ui/api/review");
  $("type-list").replaceChildren(...Object.keys(body.defect_types).map((type) => el("option", { value: type })));
  $("review-queue").replaceChildren(...(body.queue.length ? body.queue.map(reviewCard)
    : [el("p", { class: "muted", text: "nothing to review: no kept image is waiting" })]));
  $("review-done").replaceChildren(...body.reviewed.map(reviewCard));
  $("audit-rows").replaceChildren(...body.audit.map(auditRow));
}

// -- exemplars -----------------------------------------------------------------------------------------
let exOffset = 0;

function labelText(label, type) { return `${label}${type ? ` · ${type}` : ""}`; }

// An exemplar added from an upload has no file on the server to embed again under a new label.
function fileOnServer(exemplar) { return !/^(upload|station):/.test(exemplar.path || ""); }

function exemplarTile(exemplar, relabelled) {
  const tile = el("div", { class: "tile", dataset: { id: String(exemplar.id) } });
  const image = el("img", { alt: `exemplar ${exemplar.id}` });
  exemplarThumb(exemplar.id).then((url) => { if (url) image.src = url; else image.alt = "(no image on the server)"; });
  const remove = el("button", { text: "remove", class: "remove" });
  remove.addEventListener("click", async () => {
    if (remove.dataset.armed !== "1") { remove.dataset.armed = "1"; remove.textContent = "confirm remove"; return; }
    remove.disabled = true;
    try {
      await api(`/exemplars/${exemplar.id}`, { method: "DELETE" });
      tile.remove();
      say(`exemplar #${exemplar.id} removed`);
    } catch (error) { say(error.message, true); remove.disabled = false; }
  });
  const relabel = el("button", { text: "relabel", class: "relabel" });
  if (!fileOnServer(exemplar)) {
    relabel.disabled = true;
    relabel.title = "added from an upload: its file is not on the server to embed again; remove it and teach the image again";
  }
  const form = relabelForm(exemplar, tile);
  relabel.addEventListener("click", () => { form.hidden = !form.hidden; });
  tile.append(image, el("div", { class: "label", text: `#${exemplar.id} ${labelText(exemplar.label, exemplar.defect_type)}` }),
    el("div", { class: "muted", text: exemplar.path }), el("div", { class: "muted", text: exemplar.added }), remove, relabel, form);
  if (relabelled) {
    const undo = el("button", { text: "undo relabel", class: "undo-relabel" });
    undo.addEventListener("click", () => applyRelabel(tile, exemplar, relabelled.label, relabelled.defect_type, null, undo));
    tile.append(el("div", { class: "result", text: `relabelled from #${relabelled.id} ${labelText(relabelled.label, relabelled.defect_type)}` }), undo);
  }
  return tile;
}

function relabelForm(exemplar, tile) {
  const form = el("div", { class: "relabel-form", hidden: "" });
  const label = el("select", { class: "relabel-label" }, el("option", { value: "good", text: "good" }),
    el("option", { value: "defect", text: "defect" }));
  label.value = exemplar.label === "good" ? "defect" : "good";
  const type = el("input", { type: "text", list: "ex-type-list", placeholder: "defect type", class: "relabel-type",
    maxlength: "200" });
  const sync = () => { type.disabled = label.value !== "defect"; };
  label.addEventListener("change", sync);
  sync();
  const apply = el("button", { text: "apply", class: "relabel-apply" });
  apply.addEventListener("click", () => applyRelabel(tile, exemplar, label.value,
    label.value === "defect" ? type.value.trim() || null : null, exemplar, apply));
  form.append(label, type, apply);
  return form;
}

// `previous`: the exemplar as it was before this relabel (the new tile then offers to undo it), or null for an undo.
async function applyRelabel(tile, exemplar, label, type, previous, button) {
  button.disabled = true;
  say(`relabelling #${exemplar.id} as ${labelText(label, type)}…`);
  try {
    const body = await api(`/ui/api/exemplars/${encodeURIComponent(exemplar.id)}/relabel`,
      { method: "POST", json: { label, type, undo: previous === null } });
    updateTypeList(body.defect_types);
    if (!body.changed) { say(`#${exemplar.id} is already ${labelText(label, type)}`); button.disabled = false; return; }
    tile.replaceWith(exemplarTile(body.new, previous ? body.old : null));
    say(`exemplar #${body.old.id} is now #${body.new.id} ${labelText(body.new.label, body.new.defect_type)}` +
      (previous ? "" : " again"));
  } catch (error) { say(error.message, true); button.disabled = false; }
}

function updateTypeList(types) {
  $("ex-type-list").replaceChildren(...Object.keys(types || {}).map((type) => el("option", { value: type })));
}

async function loadExemplars(append) {
  const params = new URLSearchParams({ offset: String(append ? exOffset : 0), limit: "60" });
  if ($("ex-label").value) params.set("label", $("ex-label").value);
  if ($("ex-type").value) params.set("type", $("ex-type").value);
  const body = await api(`/ui/api/exemplars?${params}`);
  updateTypeList(body.defect_types);
  const chosen = $("ex-type").value;
  $("ex-type").replaceChildren(el("option", { value: "", text: "all types" }),
    ...Object.entries(body.defect_types).map(([type, count]) => el("option", { value: type, text: `${type} (${count})` })));
  $("ex-type").value = chosen;
  const tiles = body.items.map((exemplar) => exemplarTile(exemplar));
  if (append) $("ex-grid").append(...tiles); else $("ex-grid").replaceChildren(...tiles);
  exOffset = body.offset + body.items.length;
  $("ex-more").hidden = exOffset >= body.total;
  $("ex-count").textContent = `${body.total} shown of ${body.counts.good} good and ${body.counts.defect} defect · generation ${body.generation}`;
}

async function showExemplars() { await loadExemplars(false); }

// -- threshold -------------------------------------------------------------------------------------------
let thData = null;

function bins(values, low, high, count) {
  const out = new Array(count).fill(0);
  const width = (high - low) / count || 1;
  for (const v of values) out[Math.min(count - 1, Math.max(0, Math.floor((v - low) / width)))] += 1;
  return out;
}

function drawHistogram(canvas, series, low, high, lines) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 24, count = 40;
  ctx.clearRect(0, 0, W, H);
  const counted = series.map((s) => bins(s.values, low, high, count));
  const top = Math.max(1, ...counted.flat());
  const barW = (W - 2 * pad) / count;
  counted.forEach((values, k) => {
    ctx.fillStyle = series[k].colour;
    ctx.globalAlpha = 0.55;
    values.forEach((n, i) => {
      const h = (H - 2 * pad) * n / top;
      ctx.fillRect(pad + i * barW + k * barW / series.length, H - pad - h, barW / series.length, h);
    });
  });
  ctx.globalAlpha = 1;
  const x = (v) => pad + (W - 2 * pad) * (v - low) / (high - low || 1);
  for (const line of lines) {
    if (line.value === null || line.value === undefined) continue;
    ctx.strokeStyle = line.colour; ctx.lineWidth = 2; ctx.beginPath();
    ctx.moveTo(x(line.value), 4); ctx.lineTo(x(line.value), H - pad); ctx.stroke();
  }
  ctx.fillStyle = "#555"; ctx.font = "11px sans-serif";
  ctx.fillText(fmt(low, 4), pad, H - 6);
  ctx.fillText(fmt(high, 4), W - pad - 40, H - 6);
}

function confusion(samples, value) {
  const c = { tn: 0, fp: 0, fn: 0, tp: 0 };
  for (const s of samples) {
    if (!s.label) continue;
    const rejected = s.score >= value;
    if (s.label === "defect") c[rejected ? "tp" : "fn"] += 1; else c[rejected ? "fp" : "tn"] += 1;
  }
  c.recall = c.tp + c.fn ? c.tp / (c.tp + c.fn) : null;
  c.far = c.fp + c.tn ? c.fp / (c.fp + c.tn) : null;
  return c;
}

function normalise(score, record) {
  if (!record) return null;
  const t = record.value, low = record.low;
  if (low > 0 && low < t && score > 0) { const g = Math.log(9) / Math.log(t / low); return 1 / (1 + Math.pow(t / score, g)); }
  return Math.min(1, Math.max(0, 0.5 + (score - t) / Math.max(record.high - record.low, 1e-12)));
}

function delta(now, before) {
  if (now === null || before === null || now === before) return "";
  const d = 100 * (now - before);
  return ` (${d > 0 ? "+" : ""}${d.toFixed(1)} points)`;
}

function updateThreshold(value) {
  if (!thData) return;
  const record = thData.threshold;
  $("th-value").value = String(value);
  $("th-slider").value = String(value);
  const c = confusion(thData.samples, value);
  const base = record ? confusion(thData.samples, record.value) : null;
  for (const key of ["tn", "fp", "fn", "tp"]) $(`cm-${key}`).textContent = String(c[key]);
  $("th-recall").textContent = pct(c.recall) + (base ? delta(c.recall, base.recall) : "");
  $("th-far").textContent = pct(c.far) + (base ? delta(c.far, base.far) : "");
  $("th-n").textContent = `${thData.samples.filter((s) => s.label).length}`;
  const history = thData.samples.filter((s) => s.source.startsWith("history"));
  $("th-history").textContent = `${history.filter((s) => s.score >= value).length} of ${history.length}`;
  const shown = record ? normalise(value, record) : null;
  $("th-normalised").textContent = record ? `this score is ${fmt(shown)} on the stored threshold's normalised scale` : "";
  drawHistogram($("th-hist"), [
    { colour: COLOURS.good, values: thData.samples.filter((s) => s.label === "good").map((s) => s.score) },
    { colour: COLOURS.defect, values: thData.samples.filter((s) => s.label === "defect").map((s) => s.score) },
    { colour: COLOURS.unlabelled, values: thData.samples.filter((s) => !s.label).map((s) => s.score) },
  ], thData.low, thData.high, [{ value: record ? record.value : null, colour: COLOURS.line }, { value, colour: COLOURS.moved }]);
}

async function showThreshold() {
  thData = await api("/ui/api/threshold");
  const record = thData.threshold;
  const scores = thData.samples.map((s) => s.score).concat(record ? [record.value] : []);
  thData.low = scores.length ? Math.min(...scores) * 0.95 : 0;
  thData.high = scores.length ? Math.max(...scores) * 1.05 : 1;
  const slider = $("th-slider");
  slider.min = String(thData.low);
  slider.max = String(thData.high);
  slider.step = String((thData.high - thData.low) / 1000 || 0.001);
  $("th-current").textContent = record ? `stored: ${fmt(record.value, 4)} (${record.policy}) · ${record.reason}` : "no threshold stored";
  $("th-warning").hidden = !thData.warning;
  $("th-warning").textContent = thData.warning || "";
  const info = thData.reference || {};
  if (info.state !== "ready") say(`calibration goods: ${info.state}${info.detail ? ` (${info.detail})` : ""}`);
  updateThreshold(record ? record.value : (thData.low + thData.high) / 2);
}

async function applyThreshold(event) {
  event.preventDefault();
  const value = Number($("th-value").value);
  const reason = $("th-reason").value.trim();
  if (!reason) { $("th-result").textContent = "give a reason first"; return; }
  try {
    const body = await api("/ui/api/threshold", { method: "POST", json: { value, reason } });
    $("th-result").textContent = `stored: threshold ${fmt(body.threshold.value, 4)} on generation ${body.threshold.generation}`;
    $("th-reason").value = "";
    await showThreshold();
  } catch (error) { $("th-result").textContent = error.message; }
}

// -- drift ------------------------------------------------------------------------------------------------
async function showDrift() {
  const body = await api("/ui/api/drift");
  const info = body.reference_info || {};
  $("drift-info").textContent = `windows of ${body.window} passed images · ${body.current.length} in the current one · ` +
    `calibration goods: ${info.state}${info.images ? ` (${info.images} scores)` : ""}${info.detail ? ` – ${info.detail}` : ""}`;
  $("drift-warning").hidden = !body.warning;
  $("drift-warning").textContent = body.warning || "";
  const passed = body.last_scores.length ? body.last_scores : body.current;
  const all = body.reference.concat(passed);
  if (all.length) {
    drawHistogram($("drift-hist"), [{ colour: COLOURS.good, values: body.reference }, { colour: COLOURS.line, values: passed }],
      Math.min(...all) * 0.95, Math.max(...all) * 1.05, []);
  }
  $("drift-rows").replaceChildren(...body.windows.map((w) => el("tr", { class: w.warning ? "warn" : "" },
    el("td", { text: w.end }), el("td", { text: String(w.count) }), el("td", { text: fmt(w.p10, 4) }),
    el("td", { text: fmt(w.median, 4) }), el("td", { text: fmt(w.p90, 4) }), el("td", { text: fmt(w.reference_median, 4) }),
    el("td", { text: fmt(w.ks_statistic, 2) }), el("td", { text: w.p_value === null ? "–" : Number(w.p_value).toPrecision(2) }))));
}

// -- start -------------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (!token) { $("login-error").textContent = "enter the token"; return; }
    await signIn(token);
  });
  window.addEventListener("hashchange", showView);
  $("review-refresh").addEventListener("click", () => showReview().catch((e) => say(e.message, true)));
  $("ex-label").addEventListener("change", () => loadExemplars(false).catch((e) => say(e.message, true)));
  $("ex-type").addEventListener("change", () => loadExemplars(false).catch((e) => say(e.message, true)));
  $("ex-more").addEventListener("click", () => loadExemplars(true).catch((e) => say(e.message, true)));
  $("th-slider").addEventListener("input", (event) => updateThreshold(Number(event.target.value)));
  $("th-value").addEventListener("change", (event) => updateThreshold(Number(event.target.value)));
  $("th-form").addEventListener("submit", applyThreshold);
  $("drift-reference").addEventListener("click", async () => {
    try { await api("/ui/api/drift/reference", { method: "POST" }); say("computing the calibration goods again…"); }
    catch (error) { say(error.message, true); }
  });
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) signIn(kept); else openWithoutToken();
});
