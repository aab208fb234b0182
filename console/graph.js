// Small SVG line graphs without a library: a time axis (the last `spanSeconds` before the
// newest sample) and a value axis from 0 to a rounded maximum. Lines break where a value is
// null. The SVG is an image with a text alternative; the figure's caption gives the latest
// values in words, so nothing depends on seeing the lines.

import { h } from "./ui.js";

const W = 300;
const H = 90;

function niceMax(value) {
  if (!(value > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * exp >= value) return step * exp;
  }
  return 10 * exp;
}

function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (Math.abs(value) >= 100) return String(Math.round(value));
  return String(Math.round(value * 10) / 10);
}

/**
 * samples: [{at: ISO string, ...}]; series: [{key | value(sample), label, class}].
 * Returns a <figure> holding the SVG.
 */
export function lineGraph({ title, unit, samples, series, spanSeconds = 300, floorMax = 1 }) {
  const times = samples.map((s) => Date.parse(s.at));
  const end = times.length ? Math.max(...times) : Date.now();
  const start = end - spanSeconds * 1000;
  const values = series.map((s) => samples.map((sample) => (s.value ? s.value(sample) : sample[s.key])));
  const finite = values.flat().filter((v) => typeof v === "number" && Number.isFinite(v));
  const max = niceMax(Math.max(floorMax, ...finite));
  const x = (t) => ((t - start) / (end - start || 1)) * W;
  const y = (v) => H - (Math.max(0, v) / max) * H;

  const svg = h("svg:svg", {
    viewBox: `0 0 ${W} ${H}`,
    preserveAspectRatio: "none",
    class: "graph",
    role: "img",
    "data-samples": String(samples.length),
  });
  const latest = series.map((s, i) => {
    const vs = values[i];
    let last = null;
    for (let j = vs.length - 1; j >= 0; j -= 1) {
      if (typeof vs[j] === "number") {
        last = vs[j];
        break;
      }
    }
    return `${s.label} ${fmt(last)} ${unit}`;
  });
  const description = samples.length
    ? `${title}, last ${Math.round(spanSeconds / 60)} minutes, ${samples.length} sample${samples.length === 1 ? "" : "s"}. Latest: ${latest.join(", ")}. Scale 0 to ${fmt(max)} ${unit}.`
    : `${title}: no samples yet.`;
  svg.setAttribute("aria-label", description);

  // Grid: quarter lines.
  for (const q of [0.25, 0.5, 0.75]) {
    svg.append(h("svg:line", { x1: 0, x2: W, y1: H * q, y2: H * q, class: "grid", "vector-effect": "non-scaling-stroke" }));
  }
  series.forEach((s, i) => {
    let d = "";
    let pen = false;
    let lastPoint = null;
    samples.forEach((_sample, j) => {
      const v = values[i][j];
      if (typeof v !== "number" || !Number.isFinite(v) || times[j] < start) {
        pen = false;
        return;
      }
      const px = x(times[j]).toFixed(1);
      const py = y(v).toFixed(1);
      d += `${pen ? "L" : "M"}${px} ${py} `;
      pen = true;
      lastPoint = [px, py];
    });
    if (d) svg.append(h("svg:path", { d: d.trim(), class: `line ${s.class ?? ""}`, "vector-effect": "non-scaling-stroke" }));
    if (lastPoint) {
      // A dot on the newest value: one sample draws a visible mark too.
      svg.append(
        h("svg:line", {
          x1: lastPoint[0],
          x2: lastPoint[0],
          y1: lastPoint[1],
          y2: lastPoint[1],
          class: `dot ${s.class ?? ""}`,
          "vector-effect": "non-scaling-stroke",
        }),
      );
    }
  });

  const legend = series.map((s, i) =>
    h("span", { class: `legend ${s.class ?? ""}` }, h("span", { class: "swatch", "aria-hidden": "true" }), latest[i]),
  );
  return h(
    "figure",
    { class: "graph-figure" },
    h("figcaption", {}, h("span", { class: "graph-title", text: title }), " ", legend),
    h(
      "div",
      { class: "graph-box" },
      h("span", { class: "axis axis-max", "aria-hidden": "true", text: `${fmt(max)} ${unit}` }),
      svg,
      h("span", { class: "axis axis-min", "aria-hidden": "true", text: `0` }),
    ),
    h(
      "div",
      { class: "axis-time", "aria-hidden": "true" },
      h("span", { text: `−${Math.round(spanSeconds / 60)} min` }),
      h("span", { text: "now" }),
    ),
  );
}
