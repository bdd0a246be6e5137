// Following a job to its video, one at a time, and the recent jobs of this browser.

import {api, session} from "./api.js";

const $ = (id) => document.getElementById(id);
const JOBS_STORE = "zoomreel.jobs";
const MAX_RECENT = 20;

// The job followed now. Starting another ends this one's loop: its timer is cleared, its
// request in flight aborted, and an answer that still comes is dropped (``generation``).
const followed = {id: "", generation: 0, timer: 0, controller: null};

export function follow(jobId) {
  followed.generation += 1;
  clearTimeout(followed.timer);
  if (followed.controller) followed.controller.abort();
  followed.id = jobId;
  followed.controller = new AbortController();
  if (unfinished().length) watchRecent();
  $("job-error").textContent = "";
  $("result").hidden = true;
  $("video").removeAttribute("src");
  $("progress-box").hidden = false;
  $("progress").value = 0;
  $("progress-text").textContent = "Sending…";
  poll(jobId, followed.generation);
}

async function poll(jobId, generation) {
  const answer = await api("POST", "/v1/toolkit/job/status", {job_id: jobId},
                           followed.controller.signal);
  if (generation !== followed.generation) return;  // another job is followed now
  if (!answer.ok) {
    $("progress-box").hidden = true;
    $("job-error").textContent = answer.message;
    if (answer.status === 404) updateJob(jobId, {state: "expired"});
    return;
  }
  const r = answer.data.response;
  updateJob(jobId, {state: r.job_status});
  const p = r.progress || {};
  const percent = Math.round(p.percent || 0);
  $("progress").value = percent;
  if (r.job_status === "done") {
    $("progress").value = 100;
    $("progress-text").textContent = "Done.";
    showVideo(jobId, r.response);
    return;
  }
  if (r.job_status === "error") {
    $("progress-box").hidden = true;
    $("job-error").textContent = "The video could not be made: " + (r.error || "unknown error");
    updateJob(jobId, {error: r.error});
    return;
  }
  const eta = p.eta_seconds;
  $("progress-text").textContent = r.job_status === "queued" ? "Waiting for its turn…"
    : `Making the video: ${percent}%` + (eta != null ? `, about ${formatSeconds(eta)} left` : "");
  const wait = Math.min(10, Math.max(0.5, answer.retryAfter || 1));
  followed.timer = setTimeout(() => poll(jobId, generation), wait * 1000);
}

function formatSeconds(s) {
  s = Math.max(0, Math.round(s));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function showVideo(jobId, result) {
  $("result").hidden = false;
  $("result").dataset.jobId = jobId;
  $("video").src = result.download_url;
  const link = $("download");
  link.href = result.download_url;
  link.setAttribute("download", result.filename);
}

// -- recent jobs of this browser -------------------------------------------------------

function loadJobs() {
  try { return JSON.parse(localStorage.getItem(JOBS_STORE)) || []; } catch (err) { return []; }
}

function saveJobs(jobs) {
  localStorage.setItem(JOBS_STORE, JSON.stringify(jobs.slice(0, MAX_RECENT)));
  renderRecent();
}

export function addJob(job) {
  saveJobs([job, ...loadJobs().filter((j) => j.id !== job.id)]);
}

function updateJob(id, changes) {
  saveJobs(loadJobs().map((j) => (j.id === id ? {...j, ...changes} : j)));
}

const STATES = {queued: "waiting", running: "in progress", done: "done", error: "failed",
                expired: "expired"};

export function renderRecent() {
  const list = $("recent");
  list.textContent = "";
  const jobs = loadJobs();
  if (!jobs.length) {
    const li = document.createElement("li");
    li.className = "help";
    li.textContent = "None yet.";
    list.append(li);
    return;
  }
  for (const job of jobs) {
    const li = document.createElement("li");
    li.dataset.jobId = job.id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = job.name || job.id.slice(0, 8);
    const st = document.createElement("span");
    st.className = "state state-" + job.state;
    st.dataset.state = job.state;
    st.textContent = STATES[job.state] || job.state;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = new Date(job.created).toLocaleString();
    li.append(name, st, when);
    if (job.state !== "expired") {
      const show = document.createElement("button");
      show.type = "button";
      show.textContent = job.state === "done" ? "Show" : "Follow";
      show.addEventListener("click", () => follow(job.id));
      li.append(show);
    }
    if (job.error) {
      const err = document.createElement("span");
      err.className = "error";
      err.textContent = job.error;
      li.append(err);
    }
    list.append(li);
  }
}

function unfinished() {
  return loadJobs().filter((job) => !["done", "error", "expired"].includes(job.state)
                                    && job.id !== followed.id);
}

let watching = 0;

// Keep the other unfinished jobs' states current (every few seconds while there are some):
// the recent list shows every job, the page follows one.
function watchRecent() {
  if (watching) return;
  watching = setTimeout(async () => {
    watching = 0;
    await refreshRecent();
    if (unfinished().length) watchRecent();
  }, 3000);
}

// Bring the states of unfinished jobs up to date (the followed one updates itself).
export async function refreshRecent() {
  renderRecent();
  if (!session.key) return;
  for (const job of unfinished()) {
    const answer = await api("POST", "/v1/toolkit/job/status", {job_id: job.id});
    if (answer.ok) {
      updateJob(job.id, {state: answer.data.response.job_status,
                         error: answer.data.response.error});
    } else if (answer.status === 404) {
      updateJob(job.id, {state: "expired"});
    }
  }
}
