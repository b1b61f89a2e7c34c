// The library before anything is searched: its timeline (newest first, a section per month,
// paged), the places its photos were taken, and its groups of duplicates.

import { api } from "./api.js";
import { el, renderCard } from "./results.js";

const TIMELINE_PAGE = 48;

function monthOf(hit) {
  return hit.taken_at ? hit.taken_at.slice(0, 7) : "undated";
}

function monthLabel(key) {
  if (key === "undated") return "Undated";
  const [year, month] = key.split("-").map(Number);
  return new Date(Date.UTC(year, month - 1, 1)).toLocaleString("en", { month: "long", year: "numeric", timeZone: "UTC" });
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== "") search.set(name, value);
  return search.toString();
}

/** The timeline in `container`, under the page's filters: show() loads its first page, the
 * `more` button the next ones; show({ quiet: true }) refreshes it without a word in the
 * status line (which may be saying something else, such as a job's end). */
export function createTimeline({ container, more, filters, kind, cardOptions, announce, showError }) {
  let shown = 0;
  let seq = 0;

  async function load(append, quiet = false) {
    const mine = ++seq;
    const offset = append ? shown : 0;
    more.disabled = true;
    let page;
    try {
      page = await api(`/timeline?${query({ ...filters(), kind: kind(), limit: TIMELINE_PAGE, offset })}`);
    } catch (e) {
      if (mine === seq) showError(`The timeline could not be loaded: ${e.detail || e.message}`, e);
      return;
    } finally {
      more.disabled = false;
    }
    if (mine !== seq || container.hidden) return; // a later load, or another view, took over
    if (!append) {
      container.replaceChildren();
      shown = 0;
    }
    for (const hit of page.results) monthList(monthOf(hit)).append(renderCard(hit, cardOptions));
    shown += page.results.length;
    container.dataset.total = String(page.total);
    more.hidden = shown >= page.total;
    if (!page.total) container.append(el("p", { class: "help", text: "Nothing in the library matches these filters." }));
    if (!quiet) announce(`Timeline: ${shown} of ${page.total} item${page.total === 1 ? "" : "s"}, newest first.`);
  }

  function monthList(key) {
    const last = container.lastElementChild;
    if (last && last.dataset.month === key) return last.querySelector("ol");
    const list = el("ol", { class: "results" });
    container.append(
      el("section", { class: "month", "data-month": key, "data-testid": "month" }, el("h2", { text: monthLabel(key) }), list),
    );
    return list;
  }

  more.addEventListener("click", () => load(true));
  return { show: ({ quiet = false } = {}) => load(false, quiet) };
}

/** The places list (each a button that filters by it) and the place field's suggestions. */
export async function loadPlaces({ list, datalist, none, onPick }) {
  let places;
  try {
    places = await api("/places");
  } catch {
    return; // the health line says why the server cannot be reached
  }
  list.replaceChildren();
  datalist.replaceChildren();
  for (const { place, count } of places) {
    const button = el("button", { type: "button", class: "link", "data-testid": "place-name", text: `${place} (${count})` });
    button.addEventListener("click", () => onPick(place));
    list.append(el("li", {}, button));
    datalist.append(el("option", { value: place }));
  }
  none.hidden = places.length > 0;
}

/** The library's duplicate groups in `container`, each with its keeper first. */
export async function showDuplicates({ container, cardOptions, announce, showError }) {
  container.replaceChildren();
  announce("Looking for duplicates…");
  let answer;
  try {
    answer = await api("/duplicates?limit=200");
  } catch (e) {
    announce("");
    showError(`Duplicates could not be listed: ${e.detail || e.message}`, e);
    return;
  }
  if (container.hidden) return; // another view took over meanwhile
  answer.groups.forEach((group, i) => {
    const list = el("ol", { class: "results" });
    for (const member of group.members) list.append(renderCard(member, { ...cardOptions, keeper: member.id === group.keeper }));
    const heading = el("h2", { text: `Group ${i + 1}: ${group.members.length} copies` });
    container.append(el("section", { class: "dup-group", "data-testid": "duplicate-group" }, heading, list));
  });
  const listed = answer.total > answer.groups.length ? ` (the first ${answer.groups.length} listed)` : "";
  announce(`${answer.total} group${answer.total === 1 ? "" : "s"} of duplicates among ${answer.images} images${listed}.`);
  if (!answer.total) container.append(el("p", { class: "help", text: "No duplicates found." }));
}
