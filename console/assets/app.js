// The console: sign-in, tenant choice, the list of keys with their
// windows, reveal and copy on request, create, edit and delete. No value is
// fetched to draw the list; a revealed value is removed from the DOM when
// it is hidden, by the user or after revealMs.
import * as api from "./api.js";
import * as oauth from "./oauth.js";

const $ = (id) => document.getElementById(id);
const day = 24 * 60 * 60 * 1000;

let cfg = { issuer: "", clientId: "", audience: "", idleTimeoutMs: 15 * 60 * 1000, revealMs: 30000 };
let tenant = "";
let rows = []; // the attributes of the tenant's secrets, as listed
let idleTimer = 0;
const revealed = new Map(); // key -> {node, timer}

// ---- time ----------------------------------------------------------------

function pad(n, w = 2) {
  return String(n).padStart(w, "0");
}

// utc formats an instant as the API does, to the second.
function utc(d) {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

function local(d) {
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// timeCell shows an instant in UTC (the column says so), with the local
// time below it when withLocal; null is an open bound or an unknown time.
function timeCell(iso, none, withLocal) {
  const td = document.createElement("td");
  if (!iso) {
    td.textContent = none;
    td.className = "none";
    return td;
  }
  const d = new Date(iso);
  const t = document.createElement("time");
  t.dateTime = iso;
  t.textContent = utc(d).replace(/:\d\d UTC$/, "");
  t.title = `${utc(d)}, ${local(d)} local`;
  td.append(t);
  if (withLocal) {
    const small = document.createElement("small");
    small.textContent = local(d);
    td.append(small);
  }
  return td;
}

// badge names the state of a window at now.
function badge(a, now) {
  const nb = a.notBefore ? Date.parse(a.notBefore) : null;
  const eo = a.expiresOn ? Date.parse(a.expiresOn) : null;
  if (eo !== null && eo <= now) return ["expired", "Expired"];
  if (nb !== null && nb > now) return ["future", "Not yet valid"];
  if (eo !== null && eo - now <= 7 * day) return ["soon7", "Expires within 7 days"];
  if (eo !== null && eo - now <= 30 * day) return ["soon30", "Expires within 30 days"];
  return ["valid", "Valid"];
}

// ---- status --------------------------------------------------------------

function say(text) {
  $("status").textContent = text;
}

// ---- session -------------------------------------------------------------

function touch() {
  if (!api.signedIn()) return;
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => signOut(`Signed out after ${Math.round(cfg.idleTimeoutMs / 1000)} s without activity.`), cfg.idleTimeoutMs);
}

function showSignIn(message) {
  $("signin-message").textContent = message || "";
  $("session").hidden = true;
  $("workspace").hidden = true;
  $("signin").hidden = false;
  $("oauth").hidden = !(cfg.issuer && cfg.clientId);
  $("oauth-issuer").textContent = cfg.issuer;
  $("apikey").focus();
}

// signOut forgets the credential and everything it fetched.
function signOut(message) {
  api.forget();
  clearTimeout(idleTimer);
  for (const key of [...revealed.keys()]) hide(key);
  rows = [];
  tenant = "";
  $("secrets").tBodies[0].replaceChildren();
  $("tenant-select").replaceChildren();
  $("whoami").textContent = "";
  $("count").textContent = "";
  $("list-error").textContent = "";
  $("filter").value = "";
  $("apikey").value = "";
  clearEditor();
  for (const d of [$("editor"), $("confirm")]) if (d.open) d.close();
  say("");
  showSignIn(message);
}

async function signedIn(kind, secret) {
  api.setCredential(kind, secret);
  let who;
  try {
    who = await api.me();
  } catch (e) {
    api.forget();
    showSignIn(e.status === 401 ? "That credential was refused." : `Sign-in failed: ${e.message}`);
    return;
  }
  $("apikey").value = "";
  $("signin").hidden = true;
  $("session").hidden = false;
  $("workspace").hidden = false;
  $("whoami").textContent = `${who.kind === "apikey" ? "API key" : "Token"} ${who.name || who.id}`;
  const all = who.tenants.includes("*");
  const select = $("tenant-select");
  select.replaceChildren(...who.tenants.filter((t) => t !== "*").map((t) => new Option(t, t)));
  select.hidden = all || who.tenants.length === 0;
  $("tenant-select-label").hidden = select.hidden;
  $("tenant-form").hidden = !all;
  touch();
  if (!all && select.options.length > 0) {
    await openTenant(select.value);
  } else {
    $("tenant-input").focus();
  }
}

// failed handles an error of an API call: a refused credential ends the
// session, anything else is reported where it happened.
function failed(e, where) {
  if (e.status === 401) {
    signOut("The server no longer accepts this credential; sign in again.");
    return true;
  }
  where.textContent = e.status ? `${e.message} (HTTP ${e.status}${e.traceId ? ", trace " + e.traceId : ""})` : `The request failed: ${e.message}`;
  return false;
}

// ---- the list ------------------------------------------------------------

async function openTenant(t) {
  tenant = t;
  await refresh();
}

async function refresh() {
  for (const key of [...revealed.keys()]) hide(key);
  $("list-error").textContent = "";
  try {
    rows = await api.attributes(tenant);
  } catch (e) {
    rows = [];
    draw();
    failed(e, $("list-error"));
    return;
  }
  draw();
}

function button(text, cls, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function draw() {
  // Redrawing replaces the rows: hide what was revealed first, so that no
  // value outlives its row and every Reveal button means what it says.
  for (const key of [...revealed.keys()]) hide(key);
  const filter = $("filter").value.trim().toLowerCase();
  const now = Date.now();
  const shown = rows.filter((a) => a.key.toLowerCase().includes(filter));
  const body = $("secrets").tBodies[0];
  body.replaceChildren(
    ...shown.map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.key = a.key;
      // The key's cell also holds the badge of its window.
      const name = document.createElement("th");
      name.scope = "row";
      const label = document.createElement("span");
      label.className = "key";
      label.textContent = a.key;
      const [cls, text] = badge(a, now);
      const b = document.createElement("span");
      b.className = `badge badge-${cls}`;
      b.textContent = text;
      name.append(label, b);
      const actions = document.createElement("td");
      actions.className = "actions";
      actions.append(
        button("Reveal", "reveal", `Reveal ${a.key}`, () => toggleReveal(a.key)),
        button("Copy", "copy", `Copy ${a.key}`, () => copy(a.key)),
        button("Edit", "edit", `Edit ${a.key}`, () => openEditor(a)),
        button("Delete", "delete danger", `Delete ${a.key}`, () => confirmDelete(a.key)),
      );
      tr.append(name, timeCell(a.notBefore, "—", true), timeCell(a.expiresOn, "never", true), timeCell(a.createdOn, "unknown", false), timeCell(a.updatedOn, "unknown", false), actions);
      return tr;
    }),
  );
  const n = rows.length;
  $("count").textContent =
    shown.length === n ? `${n} secret${n === 1 ? "" : "s"} in ${tenant}` : `${shown.length} of ${n} secrets in ${tenant} match`;
}

function row(key) {
  return [...$("secrets").tBodies[0].rows].find((r) => r.dataset.key === key && !r.classList.contains("value-row"));
}

// ---- reveal and copy -----------------------------------------------------

async function toggleReveal(key) {
  if (revealed.has(key)) {
    hide(key);
    return;
  }
  const tr = row(key);
  let v;
  try {
    v = await api.value(tenant, key);
  } catch (e) {
    if (!failed(e, $("status")) && e.status === 404) say(`${key} cannot be read now: it is outside its validity window or was deleted.`);
    return;
  }
  if (!api.signedIn() || !tr.isConnected || revealed.has(key)) return;
  // The value gets a row of its own under its key, removed when hidden.
  const valueRow = document.createElement("tr");
  valueRow.className = "value-row";
  valueRow.dataset.for = key;
  const td = document.createElement("td");
  td.colSpan = tr.cells.length;
  const label = document.createElement("span");
  label.textContent = `Value of ${key}, hidden in ${Math.round(cfg.revealMs / 1000)} s: `;
  const code = document.createElement("code");
  code.className = "value";
  code.textContent = v;
  td.append(label, code);
  valueRow.append(td);
  tr.after(valueRow);
  const btn = tr.querySelector("button.reveal");
  btn.textContent = "Hide";
  btn.setAttribute("aria-label", `Hide ${key}`);
  revealed.set(key, { node: valueRow, code, timer: setTimeout(() => hide(key), cfg.revealMs) });
}

// hide removes a revealed value from the DOM.
function hide(key) {
  const r = revealed.get(key);
  if (!r) return;
  clearTimeout(r.timer);
  r.node.remove();
  r.code.textContent = "";
  revealed.delete(key);
  const btn = row(key)?.querySelector("button.reveal");
  if (btn) {
    btn.textContent = "Reveal";
    btn.setAttribute("aria-label", `Reveal ${key}`);
  }
}

async function copy(key) {
  let v;
  try {
    v = await api.value(tenant, key);
  } catch (e) {
    if (!failed(e, $("status")) && e.status === 404) say(`${key} cannot be read now: it is outside its validity window or was deleted.`);
    return;
  }
  try {
    await navigator.clipboard.writeText(v);
    say(`Copied ${key} to the clipboard.`);
  } catch {
    say("The browser did not allow writing to the clipboard.");
  }
}

// ---- create and edit -----------------------------------------------------

const fields = { key: "err-key", value: "err-value", "options.notBefore": "err-notbefore", "options.expiresOn": "err-expireson" };
const inputs = { "err-key": "f-key", "err-value": "f-value", "err-notbefore": "f-notbefore", "err-expireson": "f-expireson" };

function clearErrors() {
  for (const id of [...Object.values(fields), "err-general"]) $(id).textContent = "";
  for (const id of Object.values(inputs)) $(id).removeAttribute("aria-invalid");
}

function clearEditor() {
  for (const id of ["f-key", "f-value", "f-notbefore", "f-expireson"]) $(id).value = "";
  showUTC();
  clearErrors();
}

// toLocalInput gives a datetime-local value for an instant, in local time.
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// fromLocalInput reads a datetime-local value as local time.
function fromLocalInput(v) {
  if (!v) return "";
  const d = new Date(v);
  return isNaN(d) ? "invalid" : d.toISOString().replace(/\.000Z$/, "Z");
}

function showUTC() {
  for (const [input, out] of [["f-notbefore", "f-notbefore-utc"], ["f-expireson", "f-expireson-utc"]]) {
    const v = $(input).value;
    $(out).textContent = v ? utc(new Date(v)) : "none";
  }
}

let editing = null; // the key being edited, or null for a new secret

function openEditor(a) {
  clearEditor();
  editing = a ? a.key : null;
  $("editor-title").textContent = a ? `Edit ${a.key}` : "New secret";
  $("f-key").value = a ? a.key : "";
  $("f-key").readOnly = !!a;
  $("f-value").placeholder = a ? "The new value (the stored one is not shown)" : "";
  $("f-notbefore").value = a ? toLocalInput(a.notBefore) : "";
  $("f-expireson").value = a ? toLocalInput(a.expiresOn) : "";
  showUTC();
  $("editor").showModal();
  (a ? $("f-value") : $("f-key")).focus();
}

async function save(ev) {
  ev.preventDefault();
  clearErrors();
  const key = $("f-key").value.trim();
  const nb = fromLocalInput($("f-notbefore").value);
  const eo = fromLocalInput($("f-expireson").value);
  try {
    await api.put(tenant, key, $("f-value").value, nb, eo);
  } catch (e) {
    if (e.status === 401) {
      failed(e, $("err-general"));
      return;
    }
    let placed = false;
    for (const [field, messages] of Object.entries(e.fields || {})) {
      const id = fields[field];
      if (!id) continue;
      $(id).textContent = messages.join(" ");
      $(inputs[id]).setAttribute("aria-invalid", "true");
      if (!placed) $(inputs[id]).focus();
      placed = true;
    }
    if (!placed) failed(e, $("err-general"));
    return;
  }
  $("f-value").value = "";
  $("editor").close();
  say(`${editing ? "Updated" : "Created"} ${key}.`);
  await refresh();
}

// ---- delete --------------------------------------------------------------

let deleting = null;

function confirmDelete(key) {
  deleting = key;
  $("confirm-text").textContent = `Delete the secret “${key}” of tenant ${tenant}? It cannot be undone.`;
  $("confirm").showModal();
  $("confirm-cancel").focus();
}

async function doDelete() {
  const key = deleting;
  $("confirm").close();
  try {
    await api.remove(tenant, key);
  } catch (e) {
    failed(e, $("status"));
    return;
  }
  say(`Deleted ${key}.`);
  await refresh();
}

// ---- wiring --------------------------------------------------------------

async function main() {
  try {
    const resp = await fetch("config.json", { cache: "no-store" });
    cfg = { ...cfg, ...(await resp.json()) };
  } catch {
    // the defaults: API keys only
  }
  for (const type of ["keydown", "pointerdown", "input", "wheel"]) document.addEventListener(type, touch, { capture: true, passive: true });
  $("signout").addEventListener("click", () => signOut("Signed out."));
  $("apikey-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("apikey").value.trim();
    if (key) signedIn("apikey", key);
  });
  $("oauth-signin").addEventListener("click", () =>
    oauth.start(cfg).catch((e) => showSignIn(`Sign-in failed: ${e.message}`)),
  );
  $("tenant-select").addEventListener("change", () => openTenant($("tenant-select").value));
  $("tenant-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("tenant-input").value.trim();
    if (t) openTenant(t);
  });
  $("filter").addEventListener("input", draw);
  $("new-secret").addEventListener("click", () => openEditor(null));
  $("editor-form").addEventListener("submit", save);
  $("editor-cancel").addEventListener("click", () => $("editor").close());
  $("editor").addEventListener("close", () => {
    $("f-value").value = "";
  });
  for (const id of ["f-notbefore", "f-expireson"]) $(id).addEventListener("input", showUTC);
  $("confirm-cancel").addEventListener("click", () => $("confirm").close());
  $("confirm-delete").addEventListener("click", doDelete);

  if (oauth.returning()) {
    try {
      const token = await oauth.finish(cfg);
      await signedIn("bearer", token);
    } catch (e) {
      showSignIn(e.message);
    }
    return;
  }
  showSignIn("");
}

main();
