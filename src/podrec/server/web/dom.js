// Tiny DOM builders. Text always goes in as text nodes, never as HTML: titles and
// descriptions come from third-party feeds.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.setAttribute("class", v);
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("button", {class: "x", onclick: fn}, "text", childNode). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same calling convention. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace every child of ``el``. */
export function fill(el, ...children) {
  el.replaceChildren();
  return build(el, {}, children);
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/** 3,723 s -> "1 h 02 min"; 754 -> "12 min"; 42 -> "42 s"; null -> "". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "";
  const sec = Math.max(0, Math.round(Number(seconds)));
  if (sec < 60) return `${sec} s`;
  const minutes = Math.round(sec / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
}

export function formatNumber(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return "–";
  return Number(n).toLocaleString("en-US");
}

/** A metric value for a table: integers as they are, small numbers with 3–4 digits. */
export function formatMetric(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return v === null || v === undefined ? "–" : String(v);
  if (Number.isInteger(v)) return formatNumber(v);
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.01 || a === 0) return v.toFixed(3);
  return v.toFixed(4);
}

export function truncate(text, n) {
  const t = String(text ?? "");
  return t.length > n ? `${t.slice(0, n - 1).trimEnd()}…` : t;
}
