// Pictures drawn as inline SVG: horizontal bar charts, a 24-hour strip, and a listener's
// interest map. No chart library: everything here is plain SVG elements.

import { formatNumber, h, s, truncate } from "./dom.js";

// Okabe–Ito colours (distinguishable with the common colour-vision deficiencies).
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];

let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

/** A horizontal bar chart of rows [{label, value}], largest first as given. */
export function barChart(rows, { title, color = PALETTE[0], testid } = {}) {
  const id = nextId("chart");
  if (!rows.length) return h("p", { class: "muted" }, "Nothing to show yet.");
  const rowH = 24;
  const labelW = Math.min(180, Math.max(60, ...rows.map((r) => truncate(r.label, 24).length * 7.5 + 14)));
  const valueW = 64;
  const width = 480;
  const barW = width - labelW - valueW;
  const max = Math.max(...rows.map((r) => r.value), 1);
  const height = rows.length * rowH + 4;
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": `${id}-t ${id}-d`,
    "data-testid": testid,
  });
  svg.append(
    s("title", { id: `${id}-t` }, title || "Bar chart"),
    s("desc", { id: `${id}-d` }, rows.map((r) => `${r.label}: ${formatNumber(r.value)}`).join(", ")),
  );
  rows.forEach((r, i) => {
    const y = i * rowH + 2;
    const w = Math.max(1, (r.value / max) * barW);
    svg.append(
      s("g", { class: "bar", "data-label": r.label },
        s("title", {}, `${r.label}: ${formatNumber(r.value)}`),
        s("text", { x: labelW - 6, y: y + rowH / 2, class: "bar-label", "text-anchor": "end",
                    "dominant-baseline": "central" }, truncate(r.label, 24)),
        s("rect", { x: labelW, y: y + 3, width: w.toFixed(1), height: rowH - 6, rx: 3, fill: color }),
        s("text", { x: labelW + w + 5, y: y + rowH / 2, class: "bar-value",
                    "dominant-baseline": "central" }, formatNumber(r.value))),
    );
  });
  return svg;
}

/** 24 bars, one per hour of the day, as a <g> at (x, y). */
export function hourBars(hours, { x = 0, y = 0, width = 96, height = 16, color = PALETTE[0] } = {}) {
  const g = s("g", { class: "hours", transform: `translate(${x} ${y})` });
  const values = Array.from({ length: 24 }, (_, i) => Math.max(0, Number(hours?.[i]) || 0));
  const max = Math.max(...values);
  const bw = width / 24;
  g.append(s("rect", { x: 0, y: 0, width, height, class: "hours-bg" }));
  values.forEach((v, i) => {
    const bh = max > 0 ? (v / max) * (height - 1) : 0;
    if (bh > 0) {
      g.append(s("rect", { x: (i * bw + 0.5).toFixed(2), y: (height - bh).toFixed(2),
                           width: (bw - 1).toFixed(2), height: bh.toFixed(2), fill: color },
        s("title", {}, `${String(i).padStart(2, "0")}:00 — ${Math.round(v * 100)}%`)));
    }
  });
  return g;
}

/** A stand-alone 24-hour strip with 0/6/12/18 ticks, for the legend. */
export function hourStrip(hours, { color = PALETTE[0], label = "Listening by hour of day" } = {}) {
  const width = 192;
  const height = 28;
  const svg = s("svg", { class: "hourstrip", viewBox: `0 0 ${width} ${height + 12}`, role: "img",
                         "aria-label": label, "data-testid": "hour-strip" });
  svg.append(hourBars(hours, { width, height, color }));
  for (const t of [0, 6, 12, 18]) {
    svg.append(s("text", { x: (t / 24) * width + 1, y: height + 10, class: "tick" }, `${t}h`));
  }
  return svg;
}

/** Positions (cx, cy) for the interests: their (x, y) map position when every interest has
 * one, else a circle. Then overlapping boxes (circle + the text under it) are pushed apart,
 * so the picture keeps the map's arrangement and stays legible. */
function layout(interests) {
  const W = 760;
  const H = 420;
  const maxW = Math.max(...interests.map((it) => it.share), 1e-9);
  const nodes = interests.map((it, i) => {
    const r = 20 + 46 * Math.sqrt(it.share / maxW);
    return { i, r, halfW: Math.max(r, 82), above: r, below: r + 86 };
  });
  const hasXY = interests.every((it) => Number.isFinite(it.x) && Number.isFinite(it.y));
  if (hasXY && interests.length > 1) {
    const xs = interests.map((it) => it.x);
    const ys = interests.map((it) => it.y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    nodes.forEach((n, i) => {
      n.cx = x1 > x0 ? 100 + ((xs[i] - x0) / (x1 - x0)) * (W - 200) : W / 2;
      n.cy = y1 > y0 ? 90 + ((y1 - ys[i]) / (y1 - y0)) * (H - 220) : H / 2 - 40;
    });
  } else {
    nodes.forEach((n, i) => {
      const a = (2 * Math.PI * i) / Math.max(interests.length, 1) - Math.PI / 2;
      const rad = interests.length > 1 ? 170 : 0;
      n.cx = W / 2 + rad * Math.cos(a);
      n.cy = H / 2 - 40 + rad * 0.6 * Math.sin(a);
    });
  }
  for (let iter = 0; iter < 400; iter++) {
    let moved = false;
    for (let a = 0; a < nodes.length; a++) {
      for (let b = a + 1; b < nodes.length; b++) {
        const p = nodes[a];
        const q = nodes[b];
        const gap = 12;
        const ox = Math.min(p.cx + p.halfW, q.cx + q.halfW) - Math.max(p.cx - p.halfW, q.cx - q.halfW) + gap;
        const oy = Math.min(p.cy + p.below, q.cy + q.below) - Math.max(p.cy - p.above, q.cy - q.above) + gap;
        if (ox <= 0 || oy <= 0) continue;
        moved = true;
        if (ox < oy) {
          const dir = p.cx <= q.cx ? 1 : -1;
          p.cx -= (dir * ox) / 2;
          q.cx += (dir * ox) / 2;
        } else {
          const dir = p.cy <= q.cy ? 1 : -1;
          p.cy -= (dir * oy) / 2;
          q.cy += (dir * oy) / 2;
        }
      }
    }
    if (!moved) break;
  }
  return nodes;
}

/** Interests as the page uses them, whatever fields the server sent. */
export function normaliseInterests(profile) {
  const raw = Array.isArray(profile?.interests) ? profile.interests : [];
  const list = raw.map((it, i) => ({
    label: it.label || it.name || `Interest ${i + 1}`,
    summary: it.summary_source === "generated" && it.summary ? it.summary : null,
    share: Number.isFinite(Number(it.weight ?? it.share)) ? Math.max(0, Number(it.weight ?? it.share)) : 1,
    x: it.x === null || it.x === undefined ? NaN : Number(it.x),
    y: it.y === null || it.y === undefined ? NaN : Number(it.y),
    items: Array.isArray(it.items) ? it.items : [],
    tags: Array.isArray(it.tags) ? it.tags : [],
    hours: Array.isArray(it.hours) ? it.hours : null,
    devices: it.devices && typeof it.devices === "object"
      ? Object.entries(it.devices).sort((a, b) => b[1] - a[1]).map(([d]) => d) : [],
    color: PALETTE[i % PALETTE.length],
  }));
  const total = list.reduce((a, it) => a + it.share, 0);
  if (total > 1.0001) list.forEach((it) => (it.share /= total));
  return list;
}

const itemTitle = (item) => (typeof item === "string" ? item : item?.title || item?.id || "");

/** The interest map: each interest a circle at its (x, y), area by weight, labelled, with its
 * share, a 24-hour strip and its top items. */
export function interestMap(interests, { who = "this listener" } = {}) {
  const id = nextId("map");
  const nodes = layout(interests);
  let left = Math.min(...nodes.map((n) => n.cx - n.halfW)) - 10;
  let right = Math.max(...nodes.map((n) => n.cx + n.halfW)) + 10;
  let top = Math.min(...nodes.map((n) => n.cy - n.above)) - 10;
  let bottom = Math.max(...nodes.map((n) => n.cy + n.below)) + 10;
  // At least the map's own size, so one or two interests are not blown up to the width.
  const padX = Math.max(0, 760 - (right - left)) / 2;
  const padY = Math.max(0, 300 - (bottom - top)) / 2;
  [left, right, top, bottom] = [left - padX, right + padX, top - padY, bottom + padY];
  const svg = s("svg", {
    class: "interest-map",
    viewBox: `${left.toFixed(1)} ${top.toFixed(1)} ${(right - left).toFixed(1)} ${(bottom - top).toFixed(1)}`,
    role: "img",
    "aria-labelledby": `${id}-t ${id}-d`,
    "data-testid": "profile-map",
  });
  svg.append(
    s("title", { id: `${id}-t` }, `Interest map of ${who}`),
    s("desc", { id: `${id}-d` },
      interests.map((it) => `${it.label} (${Math.round(it.share * 100)}%): ` +
        it.items.slice(0, 3).map(itemTitle).join(", ")).join("; ")),
  );
  nodes.forEach((n) => {
    const it = interests[n.i];
    const pct = `${Math.round(it.share * 100)}%`;
    const g = s("g", { class: "interest", "data-testid": "profile-interest", "data-label": it.label },
      s("title", {}, `${it.label} — ${pct} of listening\n` +
        it.items.slice(0, 5).map((x) => `• ${itemTitle(x)}`).join("\n")),
      s("circle", { cx: n.cx.toFixed(1), cy: n.cy.toFixed(1), r: n.r.toFixed(1), fill: it.color,
                    "fill-opacity": 0.18, stroke: it.color, "stroke-width": 2 }),
      s("text", { x: n.cx, y: n.cy, class: "share", "text-anchor": "middle",
                  "dominant-baseline": "central", fill: it.color }, pct),
      s("text", { x: n.cx, y: n.cy + n.r + 16, class: "label", "text-anchor": "middle" },
        truncate(it.label, 26)),
    );
    let y = n.cy + n.r + 24;
    if (it.hours) {
      g.append(hourBars(it.hours, { x: n.cx - 48, y, width: 96, height: 16, color: it.color }));
      y += 20;
    }
    it.items.slice(0, 3).forEach((item) => {
      y += 14;
      g.append(s("text", { x: n.cx, y, class: "item", "text-anchor": "middle" },
        truncate(itemTitle(item), 30)));
    });
    svg.append(g);
  });
  return svg;
}
