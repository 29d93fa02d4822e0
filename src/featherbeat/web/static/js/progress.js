// The progress view: the bar, the stage in words, and following a job over the event stream
// (or polling) until it is done or failed.

import * as api from "./api.js";
import { $, showMessage, showView } from "./ui.js";

const STAGE_TEXT = {
  queued: "Waiting in the queue",
  decoding: "Decoding the audio",
  rhythm: "Finding tempo, beats and bars",
  structure: "Finding segments, key and sections",
  writing: "Writing the results",
  done: "Done",
};

export class ProgressView {
  /** hooks.onDone(job), hooks.onFailed(job): the job reached its end while shown here. */
  constructor(hooks) {
    this.hooks = hooks;
    this.stopWatching = null;
    this.following = null; // the job whose progress is shown (what Cancel deletes)
  }

  /** Shown while a file goes up: nothing to cancel on the server until it is accepted. */
  showUpload(file) {
    showView("progress");
    $("progress-name").textContent = file.name;
    this.set(0, "Uploading");
    $("cancel").hidden = true;
  }

  /** Shown while the job of an address is fetched. */
  showLoading() {
    showView("progress");
    $("progress-name").textContent = "";
    this.set(0, "Loading");
  }

  set(fraction, text) {
    const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    $("progress-fill").style.width = `${pct}%`;
    $("progress-bar").setAttribute("aria-valuenow", String(pct));
    $("progress-bar").setAttribute("aria-valuetext", `${text}, ${pct} percent`);
    $("progress-stage").textContent = text;
    $("progress-percent").textContent = `${pct} %`;
  }

  render(job) {
    if (job.status === "queued") {
      const pos = job.queue_position;
      // queue_position: 1 = next to run (docs/api.md).
      const where = pos === 1 ? "next in line" : pos > 1 ? `${pos - 1} ahead of this one` : "";
      this.set(0, where ? `${STAGE_TEXT.queued}: ${where}` : STAGE_TEXT.queued);
    } else if (job.status === "running") {
      const retry = job.attempts > 1 ? " (second try, reduced analysis)" : "";
      this.set(job.progress || 0, `${STAGE_TEXT[job.stage] || job.stage || "Working"}${retry}`);
    } else if (job.status === "done") {
      this.set(1, STAGE_TEXT.done);
    }
  }

  stop() {
    if (this.stopWatching) this.stopWatching();
    this.stopWatching = null;
  }

  follow(job) {
    this.stop();
    showView("progress");
    $("progress-name").textContent = job.filename || job.id;
    this.render(job);
    if (job.status === "done") {
      this.hooks.onDone(job);
      return;
    }
    if (job.status === "failed") {
      this.hooks.onFailed(job);
      return;
    }
    this.following = job;
    $("cancel").hidden = false;
    this.stopWatching = api.watchJob(
      job,
      (j) => {
        this.render(j);
        if (j.status === "done") this.hooks.onDone(j);
        else if (j.status === "failed") this.hooks.onFailed(j);
      },
      {
        onContact: (ok) =>
          ok
            ? showMessage("")
            : showMessage("Lost contact with the server; still trying. The analysis goes on there.", "warning"),
      },
    );
  }
}
