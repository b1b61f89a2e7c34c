// mmsearch web page: the library's timeline on load, text, image and "more like this"
// search under capture filters, paged results, videos that play their matched moment,
// generate-on-miss, places, duplicates, index jobs, and the API key setting.

import { api, getApiKey, setApiKey, syncCookie } from "./api.js";
import { setupIndexing } from "./indexing.js";
import { createTimeline, loadPlaces, showDuplicates } from "./library.js";
import { renderCard } from "./results.js";

const PAGE_SIZE = 12;

const $ = (id) => document.getElementById(id);
const els = {
  form: $("search-form"),
  q: $("q"),
  kind: $("kind"),
  generate: $("generate-toggle"),
  submit: $("search-btn"),
  file: $("image-file"),
  dropZone: $("drop-zone"),
  queryPreview: $("query-preview"),
  status: $("status"),
  error: $("error"),
  summary: $("search-summary"),
  missNote: $("miss-note"),
  results: $("results"),
  loadMore: $("load-more"),
  health: $("health"),
  settings: $("settings"),
  keyForm: $("key-form"),
  key: $("api-key"),
  keyClear: $("api-key-clear"),
  keyState: $("api-key-state"),
  filters: $("filters"),
  takenAfter: $("taken-after"),
  takenBefore: $("taken-before"),
  camera: $("camera"),
  place: $("place"),
  clearFilters: $("clear-filters"),
  showTimeline: $("show-timeline"),
  timeline: $("library-timeline"),
  timelineMore: $("timeline-more"),
  duplicates: $("duplicates"),
  findDuplicates: $("find-duplicates"),
  placeList: $("place-list"),
  placeNames: $("place-names"),
  placesNone: $("places-none"),
};

// ---- status and errors ---------------------------------------------------------------

function announce(text) {
  els.status.textContent = text;
}

function showError(text, err) {
  els.error.textContent = text;
  els.error.hidden = false;
  if (err && err.status === 401) {
    els.settings.open = true;
    els.key.focus();
  }
}

function clearError() {
  els.error.hidden = true;
  els.error.textContent = "";
}

// ---- views: the timeline, a search's results, the duplicates ---------------------------

let view = "timeline";

/** Shows one view; the others are emptied (their cards would otherwise linger hidden). */
function setView(name) {
  view = name;
  const search = name === "search";
  els.results.hidden = !search;
  if (!search) {
    els.results.replaceChildren();
    els.loadMore.hidden = true;
    els.summary.hidden = true;
    els.missNote.hidden = true;
  }
  els.timeline.hidden = name !== "timeline";
  if (name !== "timeline") {
    els.timeline.replaceChildren();
    els.timelineMore.hidden = true;
  }
  els.duplicates.hidden = name !== "duplicates";
  if (name !== "duplicates") els.duplicates.replaceChildren();
  els.filters.classList.toggle("inactive", name === "duplicates");
}

/** The capture filters as the API names them; empty fields left out. */
function filters() {
  const out = {};
  if (els.takenAfter.value) out.taken_after = els.takenAfter.value;
  if (els.takenBefore.value) out.taken_before = els.takenBefore.value;
  if (els.camera.value.trim()) out.camera = els.camera.value.trim();
  if (els.place.value.trim()) out.place = els.place.value.trim();
  return out;
}

const cardOptions = { onMoreLikeThis: (hit) => moreLikeThis(hit), announce };
const timeline = createTimeline({
  container: els.timeline,
  more: els.timelineMore,
  filters,
  kind: () => els.kind.value,
  cardOptions,
  announce,
  showError,
});

function showTimeline() {
  clearError();
  current = null;
  setView("timeline");
  timeline.show();
}

function filtersChanged() {
  if (view === "search" && current) runSearch(current);
  else if (view === "timeline") showTimeline();
}

// ---- search ----------------------------------------------------------------------------

// The current query, so that "load more" asks for its next page:
// {mode: "text", text} | {mode: "image", file} | {mode: "like", hit}
let current = null;
let shown = 0;
let firstAnswer = null; // page 1 says whether the query missed; later pages only continue it
let seq = 0; // answers to superseded searches are dropped

function describe(query) {
  if (query.mode === "text") return `“${query.text}”`;
  if (query.mode === "image") return `the image ${query.file.name || "you dropped"}`;
  return `more like ${query.hit.path.split("/").pop()}`;
}

async function fetchPage(query, offset) {
  const kind = els.kind.value;
  if (query.mode === "image") {
    const form = new FormData();
    form.append("file", query.file, query.file.name || "query-image");
    form.append("kind", kind);
    form.append("k", String(PAGE_SIZE));
    form.append("offset", String(offset));
    return api("/search/image", { method: "POST", form });
  }
  const body = { kind, k: PAGE_SIZE, offset, ...filters() };
  if (query.mode === "text") {
    body.text = query.text;
    body.generate = els.generate.checked ? "auto" : "never";
  } else {
    body.image_media_id = query.hit.id;
  }
  return api("/search", { method: "POST", json: body });
}

function setBusy(busy) {
  els.results.setAttribute("aria-busy", String(busy));
  els.submit.disabled = busy;
  els.loadMore.disabled = busy;
  document.body.classList.toggle("busy", busy);
}

async function runSearch(query, { append = false } = {}) {
  const mine = ++seq;
  clearError();
  if (!append) {
    current = query;
    shown = 0;
    setView("search");
  }
  const offset = append ? shown : 0;
  setBusy(true);
  const drawing = query.mode === "text" && els.generate.checked;
  announce(append ? "Loading more results…" : `Searching for ${describe(query)}${drawing ? " (a miss may draw a new image: this can take a while)" : ""}…`);
  let answer;
  try {
    answer = await fetchPage(query, offset);
  } catch (e) {
    if (mine !== seq) return;
    setBusy(false);
    announce(""); // the error below is an alert
    showError(`Search failed: ${e.detail || e.message}`, e);
    return;
  }
  if (mine !== seq) return;
  setBusy(false);
  if (!append) {
    els.results.replaceChildren();
    firstAnswer = answer;
  }
  const cards = answer.results.map((hit) => renderCard(hit, { onMoreLikeThis: moreLikeThis, announce }));
  els.results.append(...cards);
  shown += answer.results.length;
  renderSummary(query, firstAnswer, answer.took_ms);
  // A full page may have a next one; generated answers are a set of their own.
  els.loadMore.hidden = !(answer.results.length === PAGE_SIZE && firstAnswer.via !== "generated");
  if (append && cards.length) cards[0].querySelector("[data-testid=open]").focus();
}

function renderSummary(query, answer, tookMs) {
  const n = shown;
  const took = Math.round(tookMs);
  els.summary.textContent = `${n} result${n === 1 ? "" : "s"} for ${describe(query)} · via ${answer.via} · ${took} ms`;
  els.summary.dataset.via = answer.via;
  els.summary.dataset.miss = String(answer.miss);
  els.summary.hidden = false;
  if (answer.miss) {
    let note = "No close match in the library";
    if (answer.via === "generated") note += " — generated a new image for this query (generate on miss).";
    else if (answer.via === "prior") note += " — showing the nearest items to the generator’s idea of it (via prior).";
    else if (query.mode === "text" && !els.generate.checked) note += " — these are the nearest items. Turn on “Generate on miss” to draw one.";
    else note += " — these are the nearest items.";
    const stage = (answer.stages || []).find((s) => s.error);
    if (stage) note += ` (generation unavailable: ${stage.error})`;
    els.missNote.textContent = note;
    els.missNote.dataset.via = answer.via;
    els.missNote.hidden = false;
  } else {
    els.missNote.hidden = true;
  }
  announce(""); // the summary above is a live region of its own
}

function moreLikeThis(hit) {
  runSearch({ mode: "like", hit });
  els.summary.scrollIntoView?.({ block: "nearest" });
}

// ---- image queries: file picker and drag-and-drop ---------------------------------------

let previewUrl = null;

function imageQuery(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(`${file.name} is not an image.`);
    return;
  }
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  const img = document.createElement("img");
  img.src = previewUrl;
  img.alt = `query image ${file.name || ""}`.trim();
  const clear = document.createElement("button");
  clear.type = "button";
  clear.className = "link";
  clear.textContent = "Clear image";
  clear.addEventListener("click", () => {
    els.queryPreview.replaceChildren();
    els.queryPreview.hidden = true;
    els.file.value = "";
    els.file.focus();
  });
  els.queryPreview.replaceChildren(img, clear);
  els.queryPreview.hidden = false;
  runSearch({ mode: "image", file });
}

function droppedFile(event) {
  const files = event.dataTransfer && event.dataTransfer.files;
  return files && files.length ? files[0] : null;
}

function hasFiles(event) {
  return event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
}

function setupDrop() {
  let depth = 0;
  document.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    depth += 1;
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) document.body.classList.remove("dragging");
  });
  document.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault(); // allow the drop anywhere on the page
    e.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (e) => {
    depth = 0;
    document.body.classList.remove("dragging");
    const file = droppedFile(e);
    if (!file) return;
    e.preventDefault(); // never navigate away to the dropped file
    imageQuery(file);
  });
  els.file.addEventListener("change", () => imageQuery(els.file.files[0]));
}

// ---- settings: the API key -------------------------------------------------------------

function renderKeyState() {
  const key = getApiKey();
  els.keyState.textContent = key ? "A key is set and sent with every request." : "No key set.";
}

function setupSettings() {
  els.key.value = getApiKey();
  syncCookie();
  renderKeyState();
  els.keyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const ok = setApiKey(els.key.value);
    renderKeyState();
    announce(els.key.value.trim() ? "API key saved." : "API key cleared.");
    if (!ok) showError("This key holds characters a cookie cannot carry: searches work, but previews may not load.");
    refreshHealth();
  });
  els.keyClear.addEventListener("click", () => {
    els.key.value = "";
    setApiKey("");
    renderKeyState();
    announce("API key cleared.");
  });
}

// ---- health ----------------------------------------------------------------------------

async function refreshHealth() {
  try {
    const h = await api("/health");
    const readable = h.media - (h.unreadable || 0);
    els.health.textContent = `${readable} items indexed` + (h.unreadable ? ` · ${h.unreadable} unreadable` : "") + ` · model ${h.model}`;
    els.health.dataset.media = h.media;
  } catch (e) {
    els.health.textContent = e.status === 401 ? "API key needed (see Settings)" : "server unreachable";
  }
}

// ---- wiring ----------------------------------------------------------------------------

els.form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = els.q.value.trim();
  if (!text) {
    showError("Type something to search for, or search by image.");
    els.q.focus();
    return;
  }
  runSearch({ mode: "text", text });
});
els.kind.addEventListener("change", filtersChanged);
els.filters.addEventListener("change", filtersChanged);
els.filters.addEventListener("submit", (e) => {
  e.preventDefault(); // Enter in a filter field applies it
  filtersChanged();
});
els.clearFilters.addEventListener("click", () => {
  els.filters.reset();
  filtersChanged();
});
els.showTimeline.addEventListener("click", showTimeline);
els.findDuplicates.addEventListener("click", () => {
  clearError();
  setView("duplicates");
  showDuplicates({ container: els.duplicates, cardOptions, announce, showError });
});
els.loadMore.addEventListener("click", () => {
  if (current) runSearch(current, { append: true });
});

setupDrop();
setupSettings();
setupIndexing({
  announce,
  showError,
  onFinished: () => {
    refreshHealth();
    loadPlaces(placesOptions);
    if (view === "timeline") timeline.show({ quiet: true });
  },
});
const placesOptions = {
  list: els.placeList,
  datalist: els.placeNames,
  none: els.placesNone,
  onPick: (place) => {
    els.place.value = place;
    filtersChanged();
  },
};
refreshHealth();
loadPlaces(placesOptions);
showTimeline();
document.body.dataset.ready = "true";
