// One result card: thumbnail, score, path, when/where/with what it was taken (on hover, and
// in its details); videos play their matched moment in place; generated images carry a
// badge, their prompt and a delete button; a duplicate group's keeper a "keep" badge.

import { api } from "./api.js";

const fmt1 = (t) => Number(t).toFixed(1);

export function momentLabel(hit) {
  return `moment ${fmt1(hit.t_start)}–${fmt1(hit.t_end)} s`;
}

/** An element with attributes (`text`: its text, `class`: its class) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function baseName(path) {
  const i = path.lastIndexOf("/");
  return i >= 0 ? path.slice(i + 1) : path;
}

function thumbnail(hit) {
  // A video hit shows a frame of its moment: the server's URL names one (?t=...);
  // without it, the frame at the moment's start.
  const isMoment = hit.kind === "video" && hit.t_start != null;
  const hasTime = hit.thumbnail_url.includes("?");
  const src = isMoment && !hasTime ? `${hit.thumbnail_url}?t=${encodeURIComponent(hit.t_start)}` : hit.thumbnail_url;
  const img = el("img", { src, alt: hit.path, loading: "lazy", decoding: "async", "data-testid": "thumbnail" });
  img.addEventListener("error", () => {
    img.replaceWith(el("span", { class: "thumb-missing", text: "no preview", "data-testid": "thumbnail-missing" }));
  }, { once: true });
  return img;
}

/** "2021-08-15 09:00" from the hit's ISO time (the clock where it was taken). */
export function takenLabel(hit) {
  return hit.taken_at ? hit.taken_at.slice(0, 16).replace("T", " ") : null;
}

/** [label, value] rows of what is known about the hit: when, with what and where it was
 * taken, what found it; for a duplicate, its size and how far its hash is from the keeper's. */
function facts(hit) {
  const rows = [
    ["Taken", hit.taken_at],
    ["Camera", hit.camera],
    ["Place", hit.place],
    ["GPS", hit.gps ? hit.gps.map((x) => x.toFixed(5)).join(", ") : null],
    ["Found by", hit.via === "timeline" || hit.via === "duplicate" ? null : hit.found_by],
    ["Pixels", hit.width ? `${hit.width} × ${hit.height}` : null],
    ["Bytes", hit.size != null ? hit.size.toLocaleString("en") : null],
    ["Hash bits apart", hit.hash_distance != null ? String(hit.hash_distance) : null],
  ];
  return rows.filter(([, value]) => value);
}

function details(hit) {
  const list = el("dl");
  for (const [label, value] of facts(hit)) list.append(el("dt", { text: label }), el("dd", { text: value }));
  return el("details", { class: "info", "data-testid": "details" }, el("summary", { text: "Details" }), list);
}

/** A result card. `onMoreLikeThis(hit)` runs a search with this item as the query;
 * `keeper`: the card is the one a duplicate group suggests keeping. */
export function renderCard(hit, { onMoreLikeThis, announce, keeper = false }) {
  const hasMoment = hit.kind === "video" && hit.t_start != null && hit.t_end != null;
  const card = el("li", {
    class: `card kind-${hit.kind}${hit.generated ? " is-generated" : ""}`,
    "data-testid": "result",
    "data-id": hit.id,
    "data-kind": hit.kind,
    "data-path": hit.path,
    "data-score": hit.score,
    "data-generated": String(hit.generated),
    "data-t-start": hasMoment ? hit.t_start : null,
    "data-t-end": hasMoment ? hit.t_end : null,
    "data-taken": hit.taken_at,
    title: facts(hit).map(([label, value]) => `${label}: ${value}`).join("\n") || null,
  });

  const media = el("div", { class: "media" });
  const name = baseName(hit.path);
  let opener;
  if (hit.kind === "video") {
    opener = el("button", {
      type: "button",
      class: "thumb",
      "data-testid": "open",
      "aria-label": hasMoment ? `Play ${name} from ${fmt1(hit.t_start)} s` : `Play ${name}`,
    }, thumbnail(hit), el("span", { class: "play-icon", "aria-hidden": "true", text: "▶" }));
    opener.addEventListener("click", () => playInPlace(card, media, hit, announce));
  } else {
    opener = el("a", {
      class: "thumb",
      href: hit.file_url,
      target: "_blank",
      rel: "noopener",
      "data-testid": "open",
      "aria-label": `Open ${name}`,
    }, thumbnail(hit));
  }
  media.append(opener);

  const badges = el("div", { class: "badges" });
  if (hit.via !== "timeline") {
    const title = hit.via === "duplicate" ? "similarity to the one to keep" : "similarity";
    badges.append(el("span", { class: "score", "data-testid": "score", title, text: hit.score.toFixed(3) }));
  }
  if (keeper) badges.append(el("span", { class: "badge keeper", "data-testid": "keeper", text: "keep" }));
  badges.append(el("span", { class: `badge kind`, text: hit.kind }));
  if (hit.generated) badges.append(el("span", { class: "badge generated", "data-testid": "generated-badge", text: "generated" }));
  if (hit.via === "prior") badges.append(el("span", { class: "badge via", title: "found through the generator's prior", text: "via prior" }));

  const meta = el("div", { class: "meta" }, badges, el("p", { class: "path", "data-testid": "path", title: hit.path, text: hit.path }));
  if (hasMoment) meta.append(el("p", { class: "moment", "data-testid": "moment", text: momentLabel(hit) }));
  const taken = [takenLabel(hit), hit.camera, hit.place && hit.place.split(", ").slice(-2).join(", ")].filter(Boolean);
  if (taken.length) meta.append(el("p", { class: "taken", "data-testid": "taken", text: taken.join(" · ") }));
  if (facts(hit).length) meta.append(details(hit));
  if (hit.generated) {
    const prompt = el("p", { class: "prompt", "data-testid": "prompt", text: "prompt: …" });
    meta.append(prompt);
    loadPrompt(hit, prompt, card);
  }
  const more = el("button", { type: "button", class: "more-like", "data-testid": "more-like-this", text: "More like this",
                              "aria-label": `More like ${name}` });
  more.addEventListener("click", () => onMoreLikeThis(hit));
  const actions = el("div", { class: "actions" }, more);
  if (hit.generated) actions.append(deleteButton(hit, card, announce));
  meta.append(actions);

  card.append(media, meta);
  return card;
}

/** Deletes a generated image from the library (a poor drawing would otherwise answer its
 * prompt again; the next search that misses draws a new one). */
function deleteButton(hit, card, announce) {
  const button = el("button", { type: "button", class: "more-like delete", "data-testid": "delete-generated",
                                text: "Delete", "aria-label": "Delete this generated image" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api(`/media/${hit.id}`, { method: "DELETE" });
      card.remove();
      announce("Deleted the generated image: the next search for its prompt that misses draws a new one.");
    } catch (e) {
      button.disabled = false;
      announce(`Not deleted: ${e.detail || e.message}`);
    }
  });
  return button;
}

async function loadPrompt(hit, node, card) {
  try {
    const media = await api(`/media/${hit.id}`);
    const prompt = media.generation && media.generation.prompt;
    if (prompt) {
      node.textContent = `prompt: “${prompt}”`;
      node.dataset.prompt = prompt;
      const img = card.querySelector("img");
      if (img) img.alt = `generated: ${prompt}`;
    } else {
      node.textContent = "prompt unknown";
    }
  } catch (e) {
    node.textContent = `prompt unavailable (${e.detail || e.message})`;
  }
}

/** Swap the thumbnail for a <video> that seeks to the moment, plays it, and pauses at its
 * end (play again to go on). The timeline below marks the moment. The player's
 * data-state goes loading → seeked → playing → moment-end (or paused/error). */
function playInPlace(card, media, hit, announce) {
  const hasMoment = hit.t_start != null && hit.t_end != null;
  const start = hasMoment ? Number(hit.t_start) : 0;
  const end = hasMoment ? Number(hit.t_end) : Infinity;
  const video = el("video", {
    controls: true,
    muted: true,
    playsinline: true,
    preload: "auto",
    "data-testid": "video",
    "aria-label": hasMoment ? `${baseName(hit.path)}, ${momentLabel(hit)}` : baseName(hit.path),
  });
  video.muted = true; // the attribute alone does not mute a script-made element
  const bar = el("div", { class: "moment-bar", "data-testid": "moment-bar" });
  const head = el("div", { class: "playhead" });
  const timeline = el("div", { class: "timeline", "aria-hidden": "true" }, bar, head);
  const player = el("div", { class: "player", "data-testid": "player", "data-state": "loading" }, video, timeline);
  const setState = (s) => { player.dataset.state = s; };
  let seekedOnce = false;
  let stopArmed = hasMoment && Number.isFinite(end);
  let frameWatch = 0;

  const stopAtEnd = () => {
    if (!stopArmed || video.currentTime < end) return false;
    stopArmed = false;
    cancelAnimationFrame(frameWatch);
    video.pause();
    if (video.currentTime > end) video.currentTime = end; // back to the moment's last instant
    setState("moment-end");
    return true;
  };
  const watch = () => {
    if (!stopAtEnd() && !video.paused) frameWatch = requestAnimationFrame(watch);
  };

  video.addEventListener("loadedmetadata", () => {
    const d = video.duration;
    if (Number.isFinite(d) && d > 0 && hasMoment) {
      bar.style.left = `${(100 * start) / d}%`;
      bar.style.width = `${(100 * Math.max(0, Math.min(end, d) - start)) / d}%`;
    } else {
      bar.hidden = true;
    }
    video.currentTime = start; // fires seeking/seeked, even for 0
  }, { once: true });
  video.addEventListener("seeked", () => {
    if (seekedOnce) return;
    seekedOnce = true;
    player.dataset.seekedTime = String(video.currentTime);
    setState("seeked");
    video.play().catch((e) => {
      setState("paused");
      announce(`Press play to watch (${e.message}).`);
    });
  });
  video.addEventListener("playing", () => {
    setState("playing");
    frameWatch = requestAnimationFrame(watch);
  });
  video.addEventListener("timeupdate", () => {
    const d = video.duration;
    if (Number.isFinite(d) && d > 0) head.style.left = `${(100 * video.currentTime) / d}%`;
    stopAtEnd();
  });
  video.addEventListener("pause", () => {
    if (player.dataset.state === "playing") setState("paused");
  });
  video.addEventListener("ended", () => {
    stopArmed = false;
    setState(hasMoment ? "moment-end" : "ended");
  });
  video.addEventListener("error", () => {
    setState("error");
    announce(`The video ${baseName(hit.path)} cannot be played here.`);
  });

  for (const other of document.querySelectorAll("video")) other.pause(); // one player at a time
  video.src = hit.file_url;
  media.replaceChildren(player);
  card.classList.add("playing");
  video.focus();
  announce(hasMoment ? `Playing ${baseName(hit.path)}, ${momentLabel(hit)}.` : `Playing ${baseName(hit.path)}.`);
}
