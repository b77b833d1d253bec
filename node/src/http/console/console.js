// The dynamo console: the bearer token, the cluster view (polling /stats and /ring) and the key
// console (/kv/{key}). Plain JavaScript, no framework; charts in charts.js, simulator in sim.js.
"use strict";

const TOKEN_KEY = "dynamo-token";
const POLL_MS = 2000;
const RING_EVERY = 5; // polls between ring refreshes (and on any ring version change)
const HISTORY = 90; // rate samples kept for the chart

const $ = (id) => document.getElementById(id);

function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

// ---- auth -------------------------------------------------------------------------------------

const Auth = {
  get() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  set(token) {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  show(state, text) {
    const pill = $("auth-state");
    pill.textContent = text;
    pill.className = "pill" + (state ? " " + state : "");
  },
};

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// A request to the node with the token; returns the Response (any status but 401).
async function api(path, options) {
  const opts = Object.assign({ method: "GET", headers: {} }, options || {});
  const token = Auth.get();
  if (token) opts.headers = Object.assign({ Authorization: "Bearer " + token }, opts.headers);
  const response = await fetch(path, opts);
  if (response.status === 401) {
    Auth.show("bad", token ? "token rejected" : "token needed");
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(401, body);
  }
  Auth.show("ok", "authorized");
  return response;
}

async function apiJson(path, options) {
  const response = await api(path, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// ---- tabs -------------------------------------------------------------------------------------

function showTab(name) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === name);
  for (const p of document.querySelectorAll(".panel")) p.classList.toggle("hidden", p.id !== "panel-" + name);
}

// ---- cluster view -----------------------------------------------------------------------------

const state = { prev: null, polls: 0, ringVersion: null, rates: [], memberColor: new Map() };

function colorOf(id) {
  if (!state.memberColor.has(id)) {
    state.memberColor.set(id, Charts.PALETTE[state.memberColor.size % Charts.PALETTE.length]);
  }
  return state.memberColor.get(id);
}

// The q quantile (seconds) of per-bucket counts (interpolated within the bucket).
function bucketQuantile(bounds, counts, q) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (seen + counts[i] >= rank && counts[i] > 0) {
      if (i >= bounds.length) return Infinity;
      const lo = i === 0 ? 0 : bounds[i - 1];
      return lo + (bounds[i] - lo) * ((rank - seen) / counts[i]);
    }
    seen += counts[i];
  }
  return Infinity;
}

function ms(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds === Infinity) return "> 10 s";
  const v = seconds * 1000;
  return v >= 100 ? v.toFixed(0) + " ms" : v >= 10 ? v.toFixed(1) + " ms" : v.toFixed(2) + " ms";
}

// Per operation: counts and buckets summed over outcomes.
function byOp(stats) {
  const ops = new Map();
  for (const s of stats.requests) {
    const o = ops.get(s.op) || { count: 0, ok: 0, errors: 0, buckets: new Array(s.buckets.length).fill(0) };
    o.count += s.count;
    if (s.outcome === "ok" || s.outcome === "not_found") o.ok += s.count;
    else o.errors += s.count;
    s.buckets.forEach((c, i) => { o.buckets[i] += c; });
    ops.set(s.op, o);
  }
  return ops;
}

function renderRequests(stats) {
  const now = byOp(stats);
  const before = state.prev ? byOp(state.prev) : new Map();
  const dt = state.prev ? (stats.uptime_ms - state.prev.uptime_ms) / 1000 : 0;
  const tbody = $("requests").querySelector("tbody");
  tbody.replaceChildren();
  const sample = { t: stats.uptime_ms / 1000 };
  for (const op of ["get", "put", "delete"]) {
    const cur = now.get(op) || { count: 0, ok: 0, errors: 0, buckets: [] };
    const old = before.get(op) || { count: 0, ok: 0, errors: 0, buckets: [] };
    const rate = dt > 0 ? Math.max(0, cur.count - old.count) / dt : 0;
    sample[op] = rate;
    const window = cur.buckets.map((c, i) => c - (old.buckets[i] || 0));
    const recent = window.some((c) => c > 0);
    const b = recent ? window : cur.buckets;
    const q = (p) => ms(bucketQuantile(stats.bucket_bounds, b, p));
    tbody.append(h("tr", {},
      h("td", {}, op), h("td", { class: "num" }, rate.toFixed(1)),
      h("td", { class: "num" }, cur.ok), h("td", { class: "num" }, cur.errors),
      h("td", { class: "num" }, q(0.5)), h("td", { class: "num" }, q(0.95)), h("td", { class: "num" }, q(0.99))));
  }
  if (state.prev) {
    state.rates.push(sample);
    if (state.rates.length > HISTORY) state.rates.shift();
  }
  const t0 = state.rates.length ? state.rates[state.rates.length - 1].t : 0;
  Charts.line($("rate-chart"), ["get", "put", "delete"].map((op, i) => ({
    name: op + " req/s",
    color: Charts.PALETTE[i],
    markers: false,
    points: state.rates.map((s) => [s.t - t0, s[op]]),
  })), { xLabel: "seconds ago", yLabel: "req/s", emptyText: "measuring…", xMax: 0, legendAt: "right" });
}

function renderMembers(status) {
  const tbody = $("members").querySelector("tbody");
  tbody.replaceChildren();
  let up = 0;
  for (const m of status.members) {
    if (m.up) up += 1;
    const row = h("tr", { class: m.id === status.id ? "self" : "" },
      h("td", {}, h("span", { class: "dot " + (m.up ? "up" : "down"), title: m.up ? "up" : "down" })),
      h("td", {}, h("span", { class: "swatch", title: "ring colour" }), " " + m.id),
      h("td", {}, m.address + (m.id === status.id ? " (this node)" : "")),
      h("td", { class: "num" }, m.hints_pending));
    row.querySelector(".swatch").style.background = colorOf(m.id);
    tbody.append(row);
  }
  const down = status.members.length - up;
  $("members-summary").textContent =
    `${up} up, ${down} down · ring version ${status.ring_version}` + (status.leaving ? " · this node is leaving" : "");
}

function renderRing(ranges, status) {
  const slices = ranges.map((r) => ({
    value: r.fraction,
    color: colorOf(r.replicas[0]),
    title: `range ${r.index}: ${(r.fraction * 100).toFixed(2)}% of the keys, replicas ${r.replicas.join(", ")}`,
  }));
  const center = Charts.donut($("ring-chart"), slices);
  if (center) {
    Charts.text($("ring-chart"), center.cx, center.cy - 2, String(ranges.length), { "text-anchor": "middle", "font-size": "22", "font-weight": "700" });
    Charts.text($("ring-chart"), center.cx, center.cy + 16, "partitions", { "text-anchor": "middle", "font-size": "11" });
  }
  const legend = $("ring-legend");
  legend.replaceChildren();
  const share = new Map((status.ownership || []).map(([id, f]) => [id, f]));
  const first = new Map();
  for (const r of ranges) first.set(r.replicas[0], (first.get(r.replicas[0]) || 0) + 1);
  for (const m of status.members) {
    const sw = h("span", { class: "swatch" });
    sw.style.background = colorOf(m.id);
    const owned = share.has(m.id) ? ` · stores ${(share.get(m.id) * 100).toFixed(0)}%` : "";
    legend.append(h("li", {}, sw, `node ${m.id}: ${first.get(m.id) || 0} coordinated${owned}`));
  }
  const n = ranges.length ? ranges[0].replicas.length : 0;
  $("ring-summary").textContent = `${ranges.length} ranges, each on ${n} replicas; coloured by the first of them.`;
}

function fact(dl, label, value, progress) {
  const dd = h("dd", {}, value);
  if (progress !== undefined) {
    const bar = h("div", { class: "bar" }, h("span", {}));
    bar.firstChild.style.width = `${Math.round(Math.max(0, Math.min(1, progress)) * 100)}%`;
    dd.append(bar);
  }
  dl.append(h("dt", {}, label), dd);
}

function renderRepair(status) {
  const c = status.counters;
  const dl = $("repair");
  dl.replaceChildren();
  const settled = c.hints_recorded ? (c.hints_delivered + c.hints_dropped) / c.hints_recorded : 1;
  fact(dl, "hints held", `${status.hints_pending} (recorded ${c.hints_recorded}, delivered ${c.hints_delivered}, dropped ${c.hints_dropped})`,
    c.hints_recorded ? settled : undefined);
  fact(dl, "anti-entropy", `${status.sync_sessions_running} running · ${c.sync_sessions} sessions, ${c.sync_failures} failed`);
  fact(dl, "keys repaired", `${c.sync_keys_repaired} by anti-entropy · ${c.read_repairs} read repairs`);
  fact(dl, "partitions", `${status.partitions_replicated} replicated here · ${status.partitions_incoming} awaited`);
  fact(dl, "transfers", `${status.transfers_running} running · ${c.transfer_keys} keys sent`);
  fact(dl, "keys stored", status.keys);
}

// status.staleness: P(consistent) at times (ms) per (R, W), and the time to the target.
function renderStaleness(status) {
  const s = status.staleness;
  const svg = $("staleness-chart");
  if (!s) {
    Charts.empty(svg, "no prediction yet: it needs 20 replica round trips of each kind (write some keys)");
    $("staleness-summary").textContent = "";
    return;
  }
  const series = s.choices.map((c) => {
    const points = s.times.map((t, i) => [t, c.p_consistent[i]]);
    if (c.time_to_target !== null && c.time_to_target !== undefined) points.push([c.time_to_target, s.target]);
    points.sort((a, b) => a[0] - b[0]);
    return {
      name: `N=${c.n} R=${c.r} W=${c.w}` + (c.configured ? " (configured)" : ""),
      width: c.configured ? 3 : 1.5,
      dashed: !c.configured,
      points,
    };
  });
  const lows = series.flatMap((x) => x.points.map((p) => p[1]));
  const yMin = Math.max(0, Math.floor(Math.min(...lows) * 10) / 10 - 0.05);
  const xMax = Math.max(100, ...series.flatMap((x) => x.points.map((p) => p[0])));
  Charts.line(svg, series, {
    xScale: "log1p", xMin: 0, xMax, yMin, yMax: 1.0, legendAt: "bottom",
    xLabel: "ms after the write committed", yLabel: "P(consistent)",
    yFormat: (v) => (v * 100).toFixed(v > 0.99 && v < 1 ? 1 : 0) + "%",
  });
  const conf = s.choices.find((c) => c.configured);
  const t = conf && conf.time_to_target !== null ? `${conf.time_to_target.toFixed(2)} ms to ${(s.target * 100).toFixed(1)}%` : "";
  $("staleness-summary").textContent =
    `${t} · from ${s.write_samples} write and ${s.read_samples} read round trips, ${s.trials} Monte Carlo trials`;
}

async function poll() {
  if (!Auth.get()) {
    Auth.show("", "token needed");
    return;
  }
  try {
    const stats = await apiJson("/stats");
    const status = stats.status;
    $("node-name").textContent = `node ${status.id} · ${status.address}`;
    renderMembers(status);
    renderRequests(stats);
    renderRepair(status);
    renderStaleness(status);
    if (state.polls % RING_EVERY === 0 || state.ringVersion !== status.ring_version) {
      renderRing(await apiJson("/ring"), status);
      state.ringVersion = status.ring_version;
    }
    state.prev = stats;
    state.polls += 1;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) Auth.show("bad", "node unreachable");
  }
}

// ---- key console ------------------------------------------------------------------------------

// The key to send, or null (and why, in the status line).
function kvKey() {
  const key = $("kv-key").value;
  if (!key) {
    kvStatus("bad", "enter a key");
    return null;
  }
  if (key === "." || key === "..") {
    // URL parsing removes such path segments (%2e too): the request would name another path.
    kvStatus("bad", `a browser cannot send the key "${key}": use the HTTP API from a program, or the dynamo command`);
    return null;
  }
  return key;
}

function base64(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

function kvPath(key) {
  const params = new URLSearchParams();
  if ($("kv-r").value) params.set("r", $("kv-r").value);
  if ($("kv-w").value) params.set("w", $("kv-w").value);
  const q = params.toString();
  return "/kv/" + encodeURIComponent(key) + (q ? "?" + q : "");
}

function kvStatus(kind, text) {
  const s = $("kv-status");
  s.textContent = text;
  s.className = "status " + kind;
}

function showContext(context) {
  $("kv-context").value = context || "";
  return h("div", { class: "context", id: "kv-shown-context" }, "context: " + (context || "(none)"));
}

function errorText(response, body) {
  return `${response.status} ${response.statusText}` + (body && body.message ? `: ${body.message}` : "");
}

async function kvGet() {
  const key = kvKey();
  if (key === null) return;
  const out = $("kv-result");
  const response = await api(kvPath(key));
  const context = response.headers.get("x-dynamo-context");
  const replicas = response.headers.get("x-dynamo-replicas");
  out.replaceChildren();
  delete $("kv-value").dataset.binary;
  if (response.status === 200) {
    const type = response.headers.get("content-type") || "";
    const bytes = new Uint8Array(await response.arrayBuffer());
    let value = null;
    try {
      value = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch (e) {
      value = null;
    }
    kvStatus("ok", `200 OK: one version` + (replicas ? ` (replicas ${replicas})` : ""));
    const shown = value !== null ? value : `(binary, ${bytes.length} bytes, base64) ${base64(bytes)}`;
    out.append(h("div", { class: "value sibling", id: "kv-value-shown" }, h("span", { class: "muted small" }, type), h("pre", {}, shown)));
    // A put after this get writes the value field with the content type field: text comes back
    // as it was read, with its type; bytes that are not UTF-8 cannot be edited here (a put would
    // write their lossy text), so the field is left empty and a put refused until it is typed.
    const field = $("kv-value");
    if (value !== null) {
      field.value = value;
      delete field.dataset.binary;
      // (application/octet-stream is what the node answers for a value stored without a type.)
      if (type && type !== "application/octet-stream") $("kv-type").value = type;
    } else {
      field.value = "";
      field.dataset.binary = "1";
    }
  } else if (response.status === 300) {
    const body = await response.json();
    kvStatus("warn", `300 Multiple Choices: ${body.siblings.length} siblings (a put with this context resolves them)`);
    body.siblings.forEach((s, i) => {
      const shown = s.text !== undefined ? s.text : `(binary, base64) ${s.value}`;
      out.append(h("div", { class: "sibling", "data-sibling": String(i) },
        h("span", { class: "muted small" }, `sibling ${i + 1} · ${s.content_type || "no content type"}`),
        h("pre", {}, shown)));
    });
  } else if (response.status === 404) {
    kvStatus("warn", "404: no live version" + (context ? " (a tombstone: the context supersedes it)" : ""));
  } else {
    const body = await response.json().catch(() => null);
    kvStatus("bad", errorText(response, body));
  }
  if (response.status === 200 || response.status === 300 || response.status === 404) out.append(showContext(context));
}

async function kvPut() {
  const key = kvKey();
  if (key === null) return;
  if ($("kv-value").dataset.binary) {
    return kvStatus("bad", "the value read is binary, which the console cannot edit: type a new value to replace it");
  }
  const headers = {};
  if ($("kv-type").value) headers["Content-Type"] = $("kv-type").value;
  const ctx = $("kv-context").value.trim();
  if (ctx) headers["X-Dynamo-Context"] = ctx;
  const response = await api(kvPath(key), { method: "PUT", headers, body: $("kv-value").value });
  const out = $("kv-result");
  out.replaceChildren();
  if (response.status === 204) {
    const replicas = response.headers.get("x-dynamo-replicas");
    kvStatus("ok", `204 stored` + (ctx ? ", superseding the context's versions" : " (no context: concurrent with what was there)") + (replicas ? ` · replicas ${replicas}` : ""));
    out.append(showContext(response.headers.get("x-dynamo-context")));
  } else {
    const body = await response.json().catch(() => null);
    kvStatus("bad", errorText(response, body));
  }
}

async function kvDelete() {
  const key = kvKey();
  if (key === null) return;
  let ctx = $("kv-context").value.trim();
  let note = "";
  if (!ctx) {
    // As `dynamo delete` does: read first, delete the versions seen.
    const got = await api(kvPath(key));
    ctx = got.headers.get("x-dynamo-context") || "";
    note = " (read first: deleted the versions it saw)";
    if (!ctx) return kvStatus("warn", "nothing to delete: the key has no version");
  }
  const response = await api(kvPath(key), { method: "DELETE", headers: { "X-Dynamo-Context": ctx } });
  const out = $("kv-result");
  out.replaceChildren();
  if (response.status === 204) {
    kvStatus("ok", "204 deleted" + note);
    out.append(showContext(response.headers.get("x-dynamo-context")));
  } else {
    const body = await response.json().catch(() => null);
    kvStatus("bad", errorText(response, body));
  }
}

function guarded(action) {
  return async () => {
    for (const b of document.querySelectorAll("#kv-form button")) b.disabled = true;
    try {
      await action();
    } catch (e) {
      kvStatus("bad", e instanceof ApiError ? `${e.status}: ${e.message}` : String(e));
    } finally {
      for (const b of document.querySelectorAll("#kv-form button")) b.disabled = false;
    }
  };
}

// ---- start ------------------------------------------------------------------------------------

function start() {
  // A token in the fragment (#token=...) is taken and removed from the address bar.
  const m = location.hash.match(/token=([0-9A-Za-z._~-]+)/);
  if (m) {
    Auth.set(m[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("token").value = Auth.get();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    Auth.set($("token").value.trim());
    state.prev = null;
    state.rates = [];
    poll();
  });
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("kv-get").addEventListener("click", guarded(kvGet));
  $("kv-put").addEventListener("click", guarded(kvPut));
  $("kv-value").addEventListener("input", () => { delete $("kv-value").dataset.binary; });
  // Another key: the type a get filled in was that key's.
  $("kv-key").addEventListener("input", () => { $("kv-type").value = "text/plain"; });
  $("kv-delete").addEventListener("click", guarded(kvDelete));
  $("kv-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(kvGet)(); });
  poll();
  setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
