// The player: the <audio> element, its source (the File in memory, the server's copy, or the
// person's own copy), play/pause, seeking before the audio is ready, and the animation loop
// that runs while it plays.

import { $, showMessage } from "./ui.js";

export class Player {
  /**
   * hooks.onFrame(): draw the moment (every animation frame while playing, and after a pause
   * or a seek).
   */
  constructor(audio, hooks) {
    this.audio = audio;
    this.hooks = hooks;
    this.active = false; // a result is on screen
    this.duration = 0;
    this.objectUrl = null; // revoked when replaced or stopped
    this.pendingTime = 0; // a seek asked for before the metadata arrived
    this.raf = null;
  }

  /** A new track: nothing playing yet, the play button waits for the metadata. */
  start(duration) {
    this.stop();
    this.active = true;
    this.duration = duration;
    this.pendingTime = 0;
    $("play").disabled = true;
    delete $("play").closest(".player").dataset.needCopy;
  }

  stop() {
    if (!this.active) return;
    this.audio.pause();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
    this.audio.removeAttribute("src");
    this.audio.load();
    this.active = false;
  }

  get paused() {
    return this.audio.paused;
  }

  /** Play a File from memory; `note` says whose copy it is (empty for the one just uploaded). */
  useFile(file, note = "") {
    const url = URL.createObjectURL(file);
    this.useSource(url, url, note);
  }

  useSource(url, objectUrl, note) {
    if (this.objectUrl && this.objectUrl !== objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = objectUrl;
    if (objectUrl) delete $("play").closest(".player").dataset.needCopy;
    this.audio.src = url;
    $("audio-note").textContent = note || "";
    $("audio-note").hidden = !note;
  }

  /** No source at all: the server does not keep the audio and no File is at hand. */
  noAudio() {
    $("play").disabled = true;
    $("play").closest(".player").dataset.needCopy = "1";
    $("audio-note").textContent =
      "The server no longer keeps the audio of this track: choose your copy of it with " +
      "“Play your own copy…” to play along.";
    $("audio-note").hidden = false;
  }

  currentTime() {
    return this.audio.readyState > 0 ? this.audio.currentTime : this.pendingTime || 0;
  }

  seek(t) {
    if (!this.active) return;
    const target = Math.max(0, Math.min(this.duration, t));
    if (this.audio.readyState > 0) this.audio.currentTime = target;
    this.pendingTime = target;
    this.hooks.onFrame();
  }

  toggle() {
    if (!this.active || $("play").disabled) return;
    if (this.audio.paused) {
      this.audio.play().catch((err) => {
        // AbortError only means a pause() came before playback started: nothing went wrong.
        if (err.name !== "AbortError") showMessage(`The audio cannot be played here: ${err.message}`);
      });
    } else {
      this.audio.pause();
    }
  }

  loop() {
    if (!this.active || this.audio.paused) {
      this.raf = null;
      return;
    }
    this.hooks.onFrame();
    this.raf = requestAnimationFrame(() => this.loop());
  }

  setIcon(playing) {
    $("play").setAttribute("aria-label", playing ? "Pause" : "Play");
    $("play-icon").setAttribute("d", playing ? "M6 4h4v16H6zM14 4h4v16h-4z" : "M7 4l13 8-13 8z");
  }

  wire() {
    const audio = this.audio;
    audio.addEventListener("loadedmetadata", () => {
      $("play").disabled = false;
      if (this.active && this.pendingTime) audio.currentTime = this.pendingTime;
    });
    audio.addEventListener("play", () => {
      this.setIcon(true);
      if (this.active && !this.raf) this.raf = requestAnimationFrame(() => this.loop());
    });
    audio.addEventListener("pause", () => {
      this.setIcon(false);
      if (this.active) this.hooks.onFrame();
    });
    audio.addEventListener("ended", () => this.setIcon(false));
    audio.addEventListener("seeked", () => this.active && this.hooks.onFrame());
    audio.addEventListener("error", () => {
      if (!this.active || !audio.getAttribute("src")) return;
      if (this.objectUrl) {
        showMessage("This browser cannot play this audio format; the analysis is still all here.");
        $("play").disabled = true;
      } else {
        this.noAudio();
      }
    });
    $("play").addEventListener("click", () => this.toggle());
  }
}
