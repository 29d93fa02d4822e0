// What every view shares: the element lookup, the message line, which view is shown, and the
// address bar. No state of its own beyond the DOM.

export const $ = (id) => document.getElementById(id);

export function showMessage(text, kind = "error") {
  const el = $("message");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

/** Show one of the three views ("upload", "progress", "result") and hide the others. */
export function showView(name) {
  for (const v of ["upload", "progress", "result"]) $(`${v}-view`).hidden = v !== name;
  document.body.dataset.view = name;
}

export function currentView() {
  return document.body.dataset.view;
}

/** Put `path` in the address bar without loading it (push, or replace when asked). */
export function go(path, replace = false) {
  if (window.location.pathname === path) return;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
}

/**
 * The server's message without a leading "name: ": our own sentence names the file already
 * ("x.mp3 was refused as not audio. x.mp3: the file is …" said it twice).
 */
export function withoutName(message, name) {
  const prefix = `${name}: `;
  return name && message.startsWith(prefix) ? message.slice(prefix.length) : message;
}

export function jobPath(id) {
  return `/a/${encodeURIComponent(id)}`;
}
