/* lens report core: safe data loading, tooltip, colour scales, SVG helpers, tabs.
   Every text from the data goes through textContent (never innerHTML). */
"use strict";
const LENS = {views: {}, SVG: "http://www.w3.org/2000/svg"};
LENS.data = function (id) {
  return JSON.parse(document.getElementById(id).textContent);
};
LENS.el = function (tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};
LENS.svg = function (tag, attrs, text) {
  const e = document.createElementNS(LENS.SVG, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};
LENS.fmt = function (v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
  return Number(v).toFixed(digits === undefined ? 4 : digits);
};
/* A token shown as text: visible whitespace, never markup. */
LENS.tok = function (s) {
  return String(s).replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5").replace(/ /g, "\u00b7");
};
LENS.short = function (s, n) {
  const t = LENS.tok(s);
  return t.length > n ? t.slice(0, n - 1) + "\u2026" : t;
};
/* One tooltip for the page; lines are [text] or [label, value]. */
LENS.tip = (function () {
  let box = null;
  function ensure() {
    if (!box) {
      box = LENS.el("div", {id: "lens-tip", role: "tooltip"});
      document.body.appendChild(box);
    }
    return box;
  }
  return {
    show(ev, lines) {
      const b = ensure();
      b.textContent = "";
      for (const line of lines) {
        const row = LENS.el("div", {class: "tip-line"});
        if (Array.isArray(line)) {
          row.appendChild(LENS.el("span", {class: "tip-k", dir: "auto"}, line[0]));
          row.appendChild(LENS.el("span", {class: "tip-v"}, line[1]));
          if (line[2]) row.setAttribute("data-key", line[2]);
        } else {
          row.appendChild(LENS.el("span", {dir: "auto"}, line));
        }
        b.appendChild(row);
      }
      b.style.display = "block";
      const x = Math.min(ev.clientX + 14, window.innerWidth - b.offsetWidth - 8);
      const y = Math.min(ev.clientY + 14, window.innerHeight - b.offsetHeight - 8);
      b.style.left = Math.max(0, x) + "px";
      b.style.top = Math.max(0, y) + "px";
    },
    hide() {
      if (box) box.style.display = "none";
    },
  };
})();
/* Colour scales: sequential (0..max) white to blue; diverging red-white-blue about 0. */
LENS.mix = function (a, b, t) {
  t = Math.max(0, Math.min(1, t));
  const c = [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));
  return "rgb(" + c.join(",") + ")";
};
LENS.scale = function (kind, values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v === null || v === undefined || Number.isNaN(v)) continue;
    lo = Math.min(lo, v); hi = Math.max(hi, v);
  }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  const white = [255, 255, 255], blue = [8, 48, 107], red = [153, 0, 13];
  if (kind === "diverging") {
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    const f = (v) => (v === null || Number.isNaN(v)) ? "#eee"
      : v >= 0 ? LENS.mix(white, blue, v / m) : LENS.mix(white, red, -v / m);
    f.range = [-m, m];
    return f;
  }
  const top = kind === "prob" ? 1 : (hi > 0 ? hi : 1);
  const bottom = kind === "prob" ? 0 : Math.min(0, lo);
  const f = (v) => (v === null || Number.isNaN(v)) ? "#eee"
    : LENS.mix(white, blue, (v - bottom) / ((top - bottom) || 1));
  f.range = [bottom, top];
  return f;
};
LENS.dark = function (rgb) {
  const m = /rgb\((\d+),(\d+),(\d+)\)/.exec(rgb);
  return m ? (0.299 * m[1] + 0.587 * m[2] + 0.114 * m[3]) < 140 : false;
};
/* float16 little-endian, base64 -> Float32Array */
LENS.f16 = function (b64) {
  const bin = atob(b64), n = bin.length >> 1, out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const h = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    out[i] = e === 0 ? s * Math.pow(2, -14) * (f / 1024)
      : e === 31 ? (f ? NaN : s * Infinity) : s * Math.pow(2, e - 15) * (1 + f / 1024);
  }
  return out;
};
/* Tabs: names -> onSelect(index). Returns the bar element. */
LENS.tabs = function (names, onSelect, cls) {
  const bar = LENS.el("div", {class: "lens-tabs " + (cls || ""), role: "tablist"});
  names.forEach((name, i) => {
    const b = LENS.el("button", {type: "button", role: "tab", "data-index": i}, name);
    b.addEventListener("click", () => {
      for (const o of bar.children) o.setAttribute("aria-selected", "false");
      b.setAttribute("aria-selected", "true");
      onSelect(i);
    });
    bar.appendChild(b);
  });
  if (bar.firstChild) bar.firstChild.setAttribute("aria-selected", "true");
  return bar;
};
LENS.select = function (label, options, onChange) {
  const wrap = LENS.el("label", {class: "lens-select"}, label + " ");
  const sel = LENS.el("select", {});
  options.forEach((o, i) => sel.appendChild(LENS.el("option", {value: i}, o)));
  sel.addEventListener("change", () => onChange(Number(sel.value)));
  wrap.appendChild(sel);
  return [wrap, sel];
};
/* A colour bar legend for a scale. */
LENS.legend = function (scale, label) {
  const w = 160, h = 10, s = LENS.svg("svg", {width: w + 80, height: 30, class: "lens-legend"});
  const n = 32, [lo, hi] = scale.range;
  for (let i = 0; i < n; i++) {
    const v = lo + (hi - lo) * (i + 0.5) / n;
    s.appendChild(LENS.svg("rect", {x: 40 + i * w / n, y: 2, width: w / n + 0.5, height: h, fill: scale(v)}));
  }
  s.appendChild(LENS.svg("text", {x: 36, y: 11, "text-anchor": "end"}, LENS.fmt(lo, 2)));
  s.appendChild(LENS.svg("text", {x: 44 + w, y: 11}, LENS.fmt(hi, 2)));
  s.appendChild(LENS.svg("text", {x: 40, y: 26}, label || ""));
  return s;
};
document.addEventListener("DOMContentLoaded", () => {
  for (const sec of document.querySelectorAll("section.lens-view[data-kind]")) {
    const render = LENS.views[sec.dataset.kind];
    if (!render) continue;
    render(sec.querySelector(".lens-body"), LENS.data(sec.dataset.src), sec);
    sec.setAttribute("data-ready", "1");
  }
  window.LENS_READY_MS = performance.now();
  document.body.setAttribute("data-ready", "1");
});
