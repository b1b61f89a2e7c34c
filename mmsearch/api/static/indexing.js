// The indexing panel: start a job on a folder, then poll it until it ends.

import { api } from "./api.js";

const FINAL_STATES = new Set(["done", "failed", "interrupted"]);
const POLL_MS = 500;
const MAX_POLL_FAILURES = 5;

export function setupIndexing({ announce, showError, onFinished }) {
  const form = document.getElementById("index-form");
  const root = document.getElementById("index-root");
  const start = document.getElementById("index-start");
  const panel = document.getElementById("job");
  const progress = document.getElementById("job-progress");
  const state = document.getElementById("job-state");
  const counts = document.getElementById("job-counts");
  const details = document.getElementById("job-details");
  const message = document.getElementById("job-message");
  const errorsTitle = document.getElementById("job-errors-title");
  const errors = document.getElementById("job-errors");
  let polling = null;

  function render(job) {
    panel.hidden = false;
    panel.dataset.jobId = job.id;
    panel.dataset.state = job.state;
    const total = job.total || 0;
    if (total > 0) {
      progress.max = total;
      progress.value = Math.min(job.done, total);
    } else if (job.state === "done") {
      progress.max = 1;
      progress.value = 1; // nothing to do is all done
    } else {
      progress.removeAttribute("value"); // indeterminate: still counting files
    }
    const pct = Math.round(100 * (job.progress || 0));
    progress.textContent = `${pct} %`;
    progress.setAttribute("aria-valuetext", `${job.done} of ${total} files (${pct} %)`);
    state.textContent = job.state;
    state.className = `job-state state-${job.state}`;
    counts.textContent = `${job.done} / ${total}`;
    details.textContent = `${job.new} new · ${job.changed} changed · ${job.deleted} deleted · ${job.unchanged} unchanged · ${job.errors} error${job.errors === 1 ? "" : "s"}`;
    message.textContent = job.message || "";
    message.hidden = !job.message;
    const recent = job.recent_errors || [];
    errorsTitle.hidden = recent.length === 0;
    errors.replaceChildren(...recent.map((e) => {
      const li = document.createElement("li");
      li.dataset.testid = "job-error";
      li.dataset.path = e.path;
      const path = document.createElement("code");
      path.textContent = e.path;
      li.append(path, document.createTextNode(`: ${e.error}`));
      return li;
    }));
  }

  async function poll(jobId) {
    let failures = 0;
    const token = {};
    polling = token;
    while (polling === token) {
      let job;
      try {
        job = await api(`/jobs/${jobId}`);
        failures = 0;
      } catch (e) {
        failures += 1;
        if (e.status === 404 || e.status === 401 || failures >= MAX_POLL_FAILURES) {
          showError(`Lost track of indexing job ${jobId}: ${e.detail || e.message}`);
          break;
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
        continue;
      }
      if (polling !== token) break;
      render(job);
      if (FINAL_STATES.has(job.state)) {
        const errs = job.errors ? `, ${job.errors} error${job.errors === 1 ? "" : "s"}` : "";
        announce(`Indexing job ${job.id} ${job.state}: ${job.done} of ${job.total} files${errs}.`);
        onFinished(job);
        break;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    if (polling === token) {
      polling = null;
      start.disabled = false;
    }
  }

  // A job started before this page was opened (or reloaded) is followed too.
  api("/jobs?limit=1").then(([job]) => {
    if (job && !FINAL_STATES.has(job.state) && polling === null) {
      render(job);
      start.disabled = true;
      poll(job.id);
    }
  }).catch(() => {}); // no key yet, or no server: the search box reports those

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const folder = root.value.trim();
    if (!folder) {
      showError("Enter the path of a folder on the server to index.");
      root.focus();
      return;
    }
    start.disabled = true;
    try {
      const job = await api("/jobs", { method: "POST", json: { roots: [folder] } });
      render(job);
      announce(`Indexing job ${job.id} started on ${folder}.`);
      poll(job.id);
    } catch (e) {
      start.disabled = false;
      showError(`Cannot start indexing: ${e.detail || e.message}`, e);
    }
  });
}
