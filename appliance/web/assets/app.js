// The web console's one script. It sends forms and buttons to the management API with
// the session's CSRF token, shows the API's answer or error, and refreshes the parts of
// a page marked data-refresh. Everything it puts in the page goes in as text.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

async function call(method, path, body) {
  const headers = { "X-CSRF-Token": csrf() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  const text = await resp.text();
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!resp.ok) {
    const err = data && data.error;
    throw new Error(err ? err.message + (err.hint ? " (" + err.hint + ")" : "") : "the box answered " + resp.status);
  }
  return data;
}

// A form's fields as the API's JSON: data-kind says bool, number, list, optional or
// json. A name `list.N.field` makes a list of objects; a row left wholly empty is left
// out.
function fields(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    const kind = el.dataset.kind || "";
    if (kind === "file") continue; // withFiles reads it
    let value;
    if (kind === "bool") value = el.checked;
    else if (kind === "number") value = el.value === "" ? undefined : Number(el.value);
    else if (kind === "list") value = el.value.split(",").map((v) => v.trim()).filter(Boolean);
    else if (kind === "optional") value = el.value === "" ? undefined : el.value;
    else if (kind === "json") value = JSON.parse(el.value || "null");
    else value = el.value;
    const [name, row, field] = el.name.split(".");
    if (field === undefined) {
      if (value !== undefined) out[name] = value;
      continue;
    }
    const rows = (out[name] = out[name] || []);
    const at = (rows[Number(row)] = rows[Number(row)] || {});
    if (value !== undefined) at[field] = value;
  }
  const filled = (v) => v !== undefined && !(Array.isArray(v) && v.length === 0);
  for (const [name, value] of Object.entries(out)) {
    if (Array.isArray(value) && value.some((v) => v !== null && typeof v === "object")) {
      out[name] = value.filter((row) => row && Object.values(row).some(filled));
    }
  }
  return out;
}

// The browser reads a chosen file (data-kind="file") into the JSON as base64; the
// gate takes bodies of 1 MiB at most, so a bigger file is refused here, with the way
// that takes it.
const MAX_FILE = 3 * 256 * 1024 - 4096;

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

async function withFiles(form, out) {
  for (const el of form.elements) {
    if (el.dataset.kind !== "file" || !el.files || !el.files[0]) continue;
    const file = el.files[0];
    if (file.size > MAX_FILE) {
      throw new Error(file.name + " is " + file.size + " bytes, more than the web console sends: use rushesctl on the box");
    }
    out[el.name] = base64(new Uint8Array(await file.arrayBuffer()));
  }
  return out;
}

// An answer that is a file (name, bytes, content in base64): saved by the browser.
function saveFile(answer) {
  const raw = atob(answer.content);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = answer.name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return "Saved " + answer.name + " (" + answer.bytes + " bytes).";
}

function say(where, text, isError) {
  const box = where && (isError ? where.querySelector(".error") : where.querySelector(".result"))
    || document.getElementById("page-error");
  if (!box) return;
  box.textContent = text;
  box.hidden = false;
}

// Run "METHOD /path" with a body; show what data-show names of the answer, or reload.
async function act(el, spec, body, where) {
  const [method, path] = spec.split(" ");
  try {
    const answer = await call(method, path, body);
    if (el.dataset.download !== undefined && answer && answer.content) say(where, saveFile(answer), false);
    else if (el.dataset.show && answer) say(where, String(answer[el.dataset.show] ?? ""), false);
    // A restore on a box that does not start again by itself (rushesd on a workstation).
    else if (answer && answer.restarting === false) say(where, "Restored " + answer.files.length + " files from " + answer.from_host + ": restart rushesd to use them.", false);
    // A box that restarts its services gets a few seconds before the page asks it again.
    else if (el.dataset.done) { say(where, el.dataset.done, false); setTimeout(() => location.reload(), answer && answer.restarting ? 8000 : 600); }
    else location.reload();
  } catch (e) {
    say(where, e.message, true);
  }
}

document.addEventListener("submit", (ev) => {
  const form = ev.target;
  if (form.id === "login") {
    ev.preventDefault();
    call("POST", "/v1/session", fields(form))
      .then(() => { location.href = "/ui"; })
      .catch((e) => say(form, e.message, true));
    return;
  }
  if (!form.dataset.api) return;
  ev.preventDefault();
  if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
  withFiles(form, fields(form))
    .then((body) => act(form, form.dataset.api, body, form))
    .catch((e) => say(form, e.message, true));
});

document.addEventListener("click", (ev) => {
  const el = ev.target.closest("button");
  if (!el) return;
  if (el.dataset.logout !== undefined) {
    call("DELETE", "/v1/session").finally(() => { location.href = "/login"; });
    return;
  }
  if (!el.dataset.api || el.form) return;
  if (el.dataset.confirm && !confirm(el.dataset.confirm)) return;
  const body = el.dataset.body ? JSON.parse(el.dataset.body) : undefined;
  act(el, el.dataset.api, body, el.parentElement);
});

// Parts that refresh themselves: the server renders them (escaped); we swap them in.
for (const part of document.querySelectorAll("[data-refresh]")) {
  const every = Number(part.dataset.every) || 2000;
  setInterval(async () => {
    try {
      const resp = await fetch(part.dataset.refresh, { credentials: "same-origin" });
      if (resp.status === 401 || resp.redirected) { location.href = "/login"; return; }
      if (resp.ok) part.innerHTML = await resp.text();
    } catch (_) { /* the next tick tries again */ }
  }, every);
}
