// Hand-written SVG charts for the dynamo console: lines, histograms, a donut. Every chart draws
// into an <svg> with a viewBox, marks each data point with class "point" and sets the svg's
// data-points attribute to their number (tests and people can tell an empty chart at once).
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f6fde", "#e07b39", "#1f9d55", "#9b59b6", "#d64545", "#0fa3b1",
    "#c98a00", "#5d6d7e", "#e84393", "#6c5ce7", "#00b894", "#fd79a8", "#636e72",
    "#b33939", "#218c74", "#474787"];

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, content, attrs) {
    const t = el("text", Object.assign({ x, y }, attrs || {}), parent);
    t.textContent = content;
    return t;
  }

  function size(svg) {
    const vb = (svg.getAttribute("viewBox") || "0 0 640 200").split(/\s+/).map(Number);
    return { w: vb[2], h: vb[3] };
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("data-points", "0");
  }

  function empty(svg, message) {
    clear(svg);
    const { w, h } = size(svg);
    text(svg, w / 2, h / 2, message, { "text-anchor": "middle", class: "empty" });
  }

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1000) return (v / 1000).toFixed(a >= 10000 ? 0 : 1) + "k";
    if (a >= 10) return v.toFixed(0);
    if (a >= 1) return v.toFixed(1).replace(/\.0$/, "");
    return v.toPrecision(2);
  }

  // Scales: "linear", or "log1p" (log10(1 + x): shows 0 and spans decades; for times in ms).
  function scaler(kind, lo, hi, a, b) {
    const f = kind === "log1p" ? (x) => Math.log10(1 + Math.max(0, x)) : (x) => x;
    const flo = f(lo), fhi = f(hi);
    const span = fhi - flo || 1;
    return (x) => a + ((f(x) - flo) / span) * (b - a);
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
    return ticks;
  }

  function logTicks(hi) {
    const ticks = [0];
    for (let t = 1; t <= hi * 1.0001; t *= 10) ticks.push(t);
    return ticks;
  }

  // Axes and grid; returns the scales.
  function frame(svg, opt) {
    const { w, h } = size(svg);
    const m = { l: 48, r: opt.legendAt === "right" ? 112 : 12, t: 10, b: 34 };
    const x = scaler(opt.xScale || "linear", opt.xMin, opt.xMax, m.l, w - m.r);
    const y = scaler("linear", opt.yMin, opt.yMax, h - m.b, m.t);
    const yTicks = opt.yTicks || niceTicks(opt.yMin, opt.yMax, 4);
    for (const t of yTicks) {
      el("line", { x1: m.l, x2: w - m.r, y1: y(t), y2: y(t), class: "grid-line" }, svg);
      text(svg, m.l - 6, y(t) + 4, opt.yFormat ? opt.yFormat(t) : fmt(t), { "text-anchor": "end" });
    }
    const xTicks = opt.xTicks || (opt.xScale === "log1p" ? logTicks(opt.xMax) : niceTicks(opt.xMin, opt.xMax, 6));
    for (const t of xTicks) {
      if (t < opt.xMin || t > opt.xMax) continue;
      el("line", { x1: x(t), x2: x(t), y1: h - m.b, y2: h - m.b + 4, class: "axis" }, svg);
      text(svg, x(t), h - m.b + 16, fmt(t), { "text-anchor": "middle" });
    }
    el("line", { x1: m.l, x2: w - m.r, y1: h - m.b, y2: h - m.b, class: "axis" }, svg);
    el("line", { x1: m.l, x2: m.l, y1: m.t, y2: h - m.b, class: "axis" }, svg);
    if (opt.xLabel) text(svg, (m.l + w - m.r) / 2, h - 4, opt.xLabel, { "text-anchor": "middle" });
    if (opt.yLabel) {
      text(svg, 12, (m.t + h - m.b) / 2, opt.yLabel, {
        "text-anchor": "middle",
        transform: `rotate(-90 12 ${(m.t + h - m.b) / 2})`,
      });
    }
    return { x, y, m, w, h };
  }

  // series: [{name, points: [[x, y], ...], color, width, dashed, markers}]
  function line(svg, series, opt) {
    clear(svg);
    const all = series.flatMap((s) => s.points);
    if (all.length === 0) return empty(svg, opt.emptyText || "no data yet");
    const o = Object.assign({}, opt);
    o.xMin = o.xMin ?? Math.min(...all.map((p) => p[0]));
    o.xMax = o.xMax ?? Math.max(...all.map((p) => p[0]), o.xMin + 1);
    o.yMin = o.yMin ?? Math.min(0, ...all.map((p) => p[1]));
    o.yMax = o.yMax ?? Math.max(...all.map((p) => p[1]), o.yMin + 1);
    const { x, y, m, w } = frame(svg, o);
    let points = 0;
    series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
      if (pts.length > 1) {
        el("polyline", {
          points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
          fill: "none",
          stroke: color,
          "stroke-width": s.width || 2,
          "stroke-dasharray": s.dashed ? "5 4" : "none",
          "stroke-linejoin": "round",
        }, svg);
      }
      if (s.markers !== false) {
        for (const p of pts) {
          const c = el("circle", { cx: x(p[0]), cy: y(p[1]), r: s.width > 2 ? 3.5 : 2.5, fill: color, class: "point" }, svg);
          el("title", {}, c).textContent = `${s.name}: ${fmt(p[0])}, ${o.yFormat ? o.yFormat(p[1]) : fmt(p[1])}`;
          points += 1;
        }
      } else {
        points += pts.length;
      }
    });
    // Legend, top right (or bottom right, above the axis).
    const named = series.filter((s) => s.name).length;
    let ly = o.legendAt === "bottom" ? size(svg).h - m.b - 15 * named + 2 : m.t + 12;
    const lx = o.legendAt === "right" ? w - m.r + 10 : w - m.r - 200;
    for (const [i, s] of series.entries()) {
      if (!s.name || o.legend === false) continue;
      const color = s.color || PALETTE[i % PALETTE.length];
      el("rect", { x: lx, y: ly - 8, width: 10, height: 10, fill: color, rx: 2 }, svg);
      text(svg, lx + 15, ly + 1, s.name, s.width > 2 ? { "font-weight": "700" } : {});
      ly += 15;
    }
    svg.setAttribute("data-points", String(points));
  }

  // A histogram: edges (n + 1), counts (n), and an overflow count drawn as a last bar.
  function histogram(svg, edges, counts, opt) {
    clear(svg);
    const total = counts.reduce((a, b) => a + b, 0) + (opt.overflow || 0);
    if (total === 0) return empty(svg, opt.emptyText || "no samples");
    const xMax = edges[edges.length - 1];
    const yMax = Math.max(...counts, opt.overflow || 0, 1);
    const { x, y, h, m } = frame(svg, {
      xMin: edges[0], xMax, yMin: 0, yMax: yMax * 1.08, xLabel: opt.xLabel, yLabel: opt.yLabel,
    });
    const color = opt.color || PALETTE[0];
    let points = 0;
    counts.forEach((c, i) => {
      if (c === 0) return;
      const x0 = x(edges[i]), x1 = x(edges[i + 1]);
      const r = el("rect", {
        x: x0 + 0.5, y: y(c), width: Math.max(1, x1 - x0 - 1), height: h - m.b - y(c),
        fill: color, class: "point",
      }, svg);
      el("title", {}, r).textContent = `${fmt(edges[i])}–${fmt(edges[i + 1])} ms: ${c}`;
      points += 1;
    });
    if (opt.overflow) {
      text(svg, x(xMax) - 4, m.t + 12, `+${opt.overflow} above ${fmt(xMax)} ms`, { "text-anchor": "end" });
    }
    for (const mark of opt.marks || []) {
      if (!(mark.at <= xMax)) continue;
      el("line", { x1: x(mark.at), x2: x(mark.at), y1: m.t, y2: h - m.b, stroke: "#1d2330", "stroke-dasharray": "3 3" }, svg);
      text(svg, x(mark.at) + 3, m.t + 24 + (mark.row || 0) * 12, mark.label, {});
    }
    svg.setAttribute("data-points", String(points));
  }

  // slices: [{value, color, title}] drawn clockwise from the top.
  function donut(svg, slices) {
    clear(svg);
    const { w, h } = size(svg);
    const cx = w / 2, cy = h / 2, ro = Math.min(w, h) / 2 - 4, ri = ro * 0.58;
    const total = slices.reduce((a, s) => a + s.value, 0);
    if (!(total > 0)) return empty(svg, "no ring yet");
    let angle = -Math.PI / 2;
    const pt = (r, a) => `${(cx + r * Math.cos(a)).toFixed(2)} ${(cy + r * Math.sin(a)).toFixed(2)}`;
    for (const s of slices) {
      const sweep = (s.value / total) * 2 * Math.PI;
      const end = angle + Math.min(sweep, 2 * Math.PI - 1e-6);
      const large = sweep > Math.PI ? 1 : 0;
      const d = `M ${pt(ro, angle)} A ${ro} ${ro} 0 ${large} 1 ${pt(ro, end)} ` +
        `L ${pt(ri, end)} A ${ri} ${ri} 0 ${large} 0 ${pt(ri, angle)} Z`;
      const p = el("path", { d, fill: s.color, stroke: "#fff", "stroke-width": 0.6, class: "point" }, svg);
      el("title", {}, p).textContent = s.title;
      angle += sweep;
    }
    svg.setAttribute("data-points", String(slices.length));
    return { cx, cy, ri };
  }

  return { el, text, line, histogram, donut, empty, fmt, PALETTE };
})();
