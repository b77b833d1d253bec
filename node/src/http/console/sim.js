// The simulator page: the form, POST /sim, and the plots of its answer (latency histograms and
// the staleness curve). Uses api() and h() from console.js and Charts from charts.js.
"use strict";

const LATENCY_PARAMS = {
  constant: [["ms", "ms", 5]],
  exponential: [["mean", "mean ms", 5]],
  uniform: [["lo", "lo ms", 1], ["hi", "hi ms", 10]],
  normal: [["mean", "mean ms", 5], ["std_dev", "std dev ms", 1]],
  pareto: [["scale", "scale ms", 1], ["shape", "shape", 1.5]],
};

function latencyChanged() {
  const params = LATENCY_PARAMS[$("sim-latency").value];
  $("sim-p1-label").textContent = params[0][1];
  $("sim-p1").value = params[0][2];
  $("sim-p2-box").classList.toggle("hidden", params.length < 2);
  if (params.length > 1) {
    $("sim-p2-label").textContent = params[1][1];
    $("sim-p2").value = params[1][2];
  }
}

function simRequest() {
  const num = (id) => Number($(id).value);
  const kind = $("sim-latency").value;
  const params = LATENCY_PARAMS[kind];
  const latency = { kind };
  latency[params[0][0]] = num("sim-p1");
  if (params.length > 1) latency[params[1][0]] = num("sim-p2");
  return {
    nodes: num("sim-nodes"), n: num("sim-n"), r: num("sim-r"), w: num("sim-w"),
    strict: $("sim-strict").checked,
    latency,
    drop: num("sim-drop"),
    crashed: num("sim-crashed"),
    gossip_interval_ms: num("sim-gossip"),
    sync_interval_ms: num("sim-sync"),
    request_timeout_ms: num("sim-timeout"),
    ops: num("sim-ops"), clients: num("sim-clients"), keys: num("sim-keys"),
    reads: num("sim-reads"),
    seed: num("sim-seed"),
  };
}

function simStatus(kind, text) {
  const s = $("sim-status");
  s.textContent = text;
  s.className = "status " + kind;
}

const pct = (x) => (x * 100).toFixed(x > 0 && x < 0.001 ? 3 : 1) + "%";
const msText = (x) => Charts.fmt(x) + " ms";

function renderSimSummary(r) {
  const dl = $("sim-summary");
  dl.replaceChildren();
  const add = (k, v) => dl.append(h("dt", {}, k), h("dd", {}, v));
  const q = r.request;
  add("configuration", `${q.nodes} nodes, N=${q.n} R=${q.r} W=${q.w} ${q.strict ? "strict" : "sloppy"}, ` +
    `${q.latency.kind} links, drop ${pct(q.drop)}, ${q.crashed} crashed, seed ${q.seed}`);
  add("operations", `${r.ops.ok} ok · ${r.ops.failed} failed · ${r.ops.timed_out} timed out · ` +
    `${Charts.fmt(r.ops.throughput)} ops per virtual second` + (r.truncated ? " · stopped at the event budget" : ""));
  add("gets", `p50 ${msText(r.get.p50)} · p99 ${msText(r.get.p99)} · p99.9 ${msText(r.get.p999)} · max ${msText(r.get.max)}`);
  add("puts", `p50 ${msText(r.put.p50)} · p99 ${msText(r.put.p99)} · p99.9 ${msText(r.put.p999)} · max ${msText(r.put.max)}`);
  add("stale reads", `${r.staleness.stale} of ${r.staleness.judged} judged gets (${pct(r.staleness.rate)})`);
  add("network", `${r.network.sent} messages · ${r.network.dropped} dropped · ${r.network.refused} refused`);
  add("repair", `${r.repair.read_repairs} read repairs · ${r.repair.hints_recorded} hints (${r.repair.hints_delivered} delivered) · ` +
    `${r.repair.sync_keys_repaired} keys by anti-entropy`);
  add("virtual time", `${Charts.fmt(r.virtual_ms / 1000)} s · ${r.events} events`);
}

function renderSimCharts(r) {
  const marks = (l) => [
    { at: l.p50, label: "p50", row: 0 },
    { at: l.p99, label: "p99", row: 1 },
  ];
  Charts.histogram($("sim-get-chart"), r.get.histogram.edges, r.get.histogram.counts, {
    overflow: r.get.histogram.overflow, color: Charts.PALETTE[0], xLabel: "get latency, ms", yLabel: "gets",
    marks: marks(r.get), emptyText: "no successful gets",
  });
  Charts.histogram($("sim-put-chart"), r.put.histogram.edges, r.put.histogram.counts, {
    overflow: r.put.histogram.overflow, color: Charts.PALETTE[1], xLabel: "put latency, ms", yLabel: "puts",
    marks: marks(r.put), emptyText: "no successful puts",
  });
  // Measured: each bin at its geometric middle (the first bin, from 0, at half its end).
  const mid = (p) => (p.to_ms === null ? p.from_ms * 1.5 : p.from_ms === 0 ? p.to_ms / 2 : Math.sqrt(p.from_ms * p.to_ms));
  const series = [{
    name: `measured, N=${r.request.n} R=${r.request.r} W=${r.request.w}`,
    width: 3,
    points: r.staleness.curve.map((p) => [mid(p), p.p]),
  }];
  const pred = r.staleness.predicted;
  if (pred) {
    const c = pred.choices.find((x) => x.configured);
    if (c) {
      const points = pred.times.map((t, i) => [t, c.p_consistent[i]]);
      if (c.time_to_target !== null) points.push([c.time_to_target, pred.target]);
      points.sort((a, b) => a[0] - b[0]);
      series.push({ name: "PBS prediction (node 0)", width: 1.5, dashed: true, points });
    }
  }
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  Charts.line($("sim-staleness-chart"), series, {
    xScale: "log1p", xMin: 0, xMax: Math.max(10, ...xs), legendAt: "bottom",
    yMin: Math.max(0, Math.floor(Math.min(1, ...ys) * 10) / 10 - 0.05), yMax: 1,
    xLabel: "ms from the last acknowledged write to the read", yLabel: "P(consistent)",
    yFormat: (v) => (v * 100).toFixed(0) + "%",
    emptyText: "no judged reads (no get followed an acknowledged put)",
  });
}

async function runSim(e) {
  e.preventDefault();
  const button = $("sim-run");
  button.disabled = true;
  simStatus("warn", "running…");
  try {
    const response = await api("/sim", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(simRequest()),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      simStatus("bad", `${response.status}: ${(body && body.message) || response.statusText}`);
      return;
    }
    const wall = response.headers.get("x-dynamo-sim-wall-ms");
    simStatus("ok", `done` + (wall ? ` in ${wall} ms of wall time` : ""));
    renderSimSummary(body);
    renderSimCharts(body);
  } catch (err) {
    simStatus("bad", err instanceof ApiError ? `${err.status}: ${err.message}` : String(err));
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("sim-latency").addEventListener("change", latencyChanged);
  $("sim-form").addEventListener("submit", runSim);
});
