// The page: three views over one URL scheme. "/" uploads; "/a/{id}" shows progress, then the
// result. The job id in the URL is the only state that must survive a reload; the rest is
// fetched again from the API. This module is the router: it owns which view is shown and
// hands a job from one view to the next; each view (upload.js, progress.js, result.js) and
// the player (player.js) own their own state.

import * as api from "./api.js";
import { momentAt } from "./model.js";
import * as store from "./store.js";
import { ProgressView } from "./progress.js";
import { ResultView } from "./result.js";
import { UploadView } from "./upload.js";
import { $, go, jobPath, showMessage, showView, withoutName } from "./ui.js";

// The File just uploaded (or chosen to play along) from this page, by job id: played from
// memory, no download. Gone with a reload, as the page's memory is.
const files = new Map();

const upload = new UploadView({
  beforeUpload: (file) => {
    result.stop(); // a file dropped over a result replaces it
    progress.showUpload(file);
  },
  onProgress: (fraction) => progress.set(fraction, "Uploading"),
  onUploaded: (job, file) => {
    files.set(job.id, file);
    go(jobPath(job.id));
    progress.follow(job);
  },
});

const progress = new ProgressView({
  onDone: (job) => finish(job),
  onFailed: (job) => failed(job),
});

const result = new ResultView({
  onDelete: (job) =>
    removeJob(
      job,
      `Delete the analysis of ${job.filename || job.id} and its audio from the server?`,
      "Deleting",
      "deleted",
    ),
  onLocalFile: (job, file) => files.set(job.id, file),
});

function showUpload() {
  result.stop();
  upload.show();
}

/**
 * Delete a job on the server after the person confirms: Cancel (queued/running) and Delete
 * (done) are the same DELETE. `doing`/`done` word the messages ("Cancelling"/"cancelled").
 */
async function removeJob(job, question, doing, done) {
  if (!job || !window.confirm(question)) return;
  try {
    await api.deleteJob(job);
  } catch (err) {
    showMessage(
      err.status === 401
        ? `${doing} needs this server's API token: enter it at the top, then try again.`
        : `The analysis could not be ${done}: ${err.message}`,
    );
    if (err.status === 401) upload.askForToken();
    return;
  }
  progress.stop();
  store.forget(job.id);
  files.delete(job.id);
  go("/");
  showUpload();
  showMessage(`The analysis of ${job.filename || job.id} was ${done}.`, "info");
}

function cancel() {
  const job = progress.following;
  const name = job && (job.filename || job.id);
  removeJob(job, `Stop analysing ${name} and delete it from the server?`, "Cancelling", "cancelled");
}

function failed(job) {
  store.remember({ id: job.id, status: "failed" });
  showUpload();
  const why = job.error ? withoutName(job.error.message, job.filename) : "The analysis failed.";
  showMessage(`The analysis of ${job.filename || "the track"} failed: ${why}`);
}

async function finish(job) {
  let analysis;
  try {
    analysis = await api.getAnalysis(job);
  } catch (err) {
    showMessage(`The result could not be loaded: ${err.message}`);
    return;
  }
  // Let the full bar be seen for a moment: it is the answer to "did it finish?".
  await new Promise((r) => setTimeout(r, 300));
  if (window.location.pathname !== jobPath(job.id)) return; // the person moved on
  result.show(job, analysis, files.get(job.id));
}

async function route() {
  const match = window.location.pathname.match(/^\/a\/([^/]+)$/);
  if (!match) {
    progress.stop();
    showUpload();
    return;
  }
  const id = decodeURIComponent(match[1]);
  if (result.shownId === id) {
    showView("result");
    return;
  }
  progress.showLoading();
  try {
    progress.follow(await api.getJob(id));
  } catch (err) {
    showUpload();
    if (err.status === 404) {
      store.forget(id);
      upload.renderRecent();
      showMessage(
        `There is no analysis ${id} on this server (it may have been deleted). Upload the track again.`,
      );
    } else {
      showMessage(`The analysis could not be loaded: ${err.message}`);
    }
  }
}

async function start() {
  upload.wire();
  result.wire();
  $("cancel").addEventListener("click", cancel);
  window.addEventListener("popstate", route);
  try {
    upload.setConfig(await api.getConfig());
  } catch (err) {
    // The page still works without the limits; the server checks them anyway.
    showMessage(
      `The server's settings could not be read (${err.message}). Uploads may still work.`,
      "warning",
    );
  }
  await route();
  document.body.dataset.ready = "1";
}

start();

// For the console and for tests: the views and the moment helper.
window.featherbeat = { upload, progress, result, files, momentAt };
