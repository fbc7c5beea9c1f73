/* Heatmap view: rows x cols, panels (tabs), hover shows labels, value and top-k tokens. */
"use strict";
LENS.views.heatmap = function (body, d) {
  const nc = d.cols.length;
  const cw = Math.max(12, Math.min(64, Math.floor(1100 / Math.max(1, nc))));
  const colLabel = Math.min(12, Math.max(...d.cols.map((c) => LENS.tok(c).length), 1));
  const top = 10, bottom = 14 + 6.5 * colLabel;
  const holder = LENS.el("div", {class: "lens-plot"});
  let panel = 0;
  const vocab = d.vocab || {};
  function topk(p, r, c) {
    const t = d.topk && p.topk ? d.topk[p.topk] : null;
    if (!t) return [];
    const out = [], base = (r * nc + c) * t.k;
    for (let j = 0; j < t.k; j++) {
      const id = t.ids[base + j];
      if (id === null || id < 0) continue;
      out.push([LENS.tok(vocab[id] !== undefined ? vocab[id] : "#" + id), LENS.fmt(t.probs[base + j], 4)]);
    }
    return out;
  }
  function draw() {
    const p = d.panels[panel], rows = p.rows || d.rows, nr = rows.length;
    const ch = Math.max(8, Math.min(26, Math.floor(640 / Math.max(1, nr))));
    const left = 12 + 7 * Math.min(14, Math.max(...rows.map((r) => String(r).length), 1));
    const flat = [].concat(...p.z);
    const scale = LENS.scale(p.scale || d.scale || "seq", flat);
    const W = left + nc * cw + 10, H = top + nr * ch + bottom;
    const s = LENS.svg("svg", {width: W, height: H, class: "lens-heatmap", "data-panel": panel});
    for (let r = 0; r < nr; r++) {
      const y = top + (d.flipRows ? nr - 1 - r : r) * ch;
      s.appendChild(LENS.svg("text", {x: left - 4, y: y + ch / 2 + 4, "text-anchor": "end", class: "axis"}, ch >= 9 ? LENS.short(rows[r], 14) : ""));
      for (let c = 0; c < nc; c++) {
        const v = p.z[r][c];
        const fill = scale(v);
        s.appendChild(LENS.svg("rect", {x: left + c * cw, y: y, width: cw - 1, height: ch - 1, fill: fill, "data-r": r, "data-c": c, class: "cell"}));
        if (cw >= 30 && ch >= 14 && p.topk && d.topk) {
          const t = d.topk[p.topk], id = t.ids[(r * nc + c) * t.k];
          if (id !== null && id >= 0) {
            const label = LENS.short(vocab[id] !== undefined ? vocab[id] : "#" + id, Math.floor(cw / 6.5));
            s.appendChild(LENS.svg("text", {x: left + c * cw + cw / 2, y: y + ch / 2 + 4, "text-anchor": "middle", class: "cell-text" + (LENS.dark(fill) ? " on-dark" : "")}, label));
          }
        }
      }
    }
    for (let c = 0; c < nc; c++) {
      const x = left + c * cw + cw / 2, y = top + nr * ch + 6;
      s.appendChild(LENS.svg("text", {x: x, y: y, transform: "rotate(60 " + x + " " + y + ")", class: "axis"}, LENS.short(d.cols[c], 12)));
    }
    s.addEventListener("mousemove", (ev) => {
      const t = ev.target;
      if (!t.classList || !t.classList.contains("cell")) { LENS.tip.hide(); return; }
      const r = Number(t.dataset.r), c = Number(t.dataset.c), v = p.z[r][c];
      const lines = [[d.rowTitle || "row", String(rows[r])], [d.colTitle || "column", LENS.tok(d.cols[c])],
        [p.valueLabel || "value", LENS.fmt(v, 4), "value"]];
      for (const x of (p.extra || [])) lines.push([x.label, LENS.fmt(x.z[r][c], 4)]);
      const tk = topk(p, r, c);
      if (tk.length) lines.push("top tokens:");
      LENS.tip.show(ev, lines.concat(tk));
    });
    s.addEventListener("mouseleave", () => LENS.tip.hide());
    holder.textContent = "";
    holder.appendChild(s);
    holder.appendChild(LENS.legend(scale, p.valueLabel || ""));
  }
  if (d.panels.length > 1) body.appendChild(LENS.tabs(d.panels.map((p) => p.name), (i) => { panel = i; draw(); }));
  body.appendChild(holder);
  draw();
};
/* Line plot: series over x, hover shows x and every series' y. */
LENS.views.lines = function (body, d) {
  const W = 560, H = 260, L = 50, R = 10, T = 10, B = 36;
  const ys = [].concat(...d.series.map((s) => s.y)).filter((v) => v !== null && Number.isFinite(v));
  let lo = Math.min(0, ...ys), hi = Math.max(...ys, 1e-9);
  if (d.yRange) { lo = d.yRange[0]; hi = d.yRange[1]; }
  const n = d.x.length, sx = (i) => L + (n > 1 ? i * (W - L - R) / (n - 1) : (W - L - R) / 2);
  const sy = (v) => T + (H - T - B) * (1 - (v - lo) / ((hi - lo) || 1));
  const s = LENS.svg("svg", {width: W, height: H, class: "lens-lines"});
  s.appendChild(LENS.svg("line", {x1: L, x2: W - R, y1: sy(lo), y2: sy(lo), class: "frame"}));
  s.appendChild(LENS.svg("line", {x1: L, x2: L, y1: T, y2: H - B, class: "frame"}));
  for (const v of [lo, (lo + hi) / 2, hi]) s.appendChild(LENS.svg("text", {x: L - 4, y: sy(v) + 4, "text-anchor": "end", class: "axis"}, LENS.fmt(v, 2)));
  const step = Math.max(1, Math.ceil(n / 12));
  for (let i = 0; i < n; i += step) s.appendChild(LENS.svg("text", {x: sx(i), y: H - B + 14, "text-anchor": "middle", class: "axis"}, LENS.short(d.x[i], 8)));
  s.appendChild(LENS.svg("text", {x: (W + L) / 2, y: H - 4, "text-anchor": "middle", class: "axis"}, d.xLabel || ""));
  const colours = ["#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d68910", "#555"];
  d.series.forEach((ser, k) => {
    let path = "";
    ser.y.forEach((v, i) => { if (v !== null && Number.isFinite(v)) path += (path ? "L" : "M") + sx(i).toFixed(1) + "," + sy(v).toFixed(1); });
    s.appendChild(LENS.svg("path", {d: path, fill: "none", stroke: colours[k % 6], "stroke-width": 2}));
  });
  for (let i = 0; i < n; i++) {
    const w = (W - L - R) / Math.max(1, n - 1);
    s.appendChild(LENS.svg("rect", {x: sx(i) - w / 2, y: T, width: w, height: H - T - B, class: "hit", "data-i": i}));
  }
  s.addEventListener("mousemove", (ev) => {
    const t = ev.target;
    if (!t.dataset || t.dataset.i === undefined) { LENS.tip.hide(); return; }
    const i = Number(t.dataset.i);
    LENS.tip.show(ev, [[d.xLabel || "x", LENS.tok(d.x[i])]].concat(d.series.map((ser) => [ser.name, LENS.fmt(ser.y[i], 4), "value"])));
  });
  s.addEventListener("mouseleave", () => LENS.tip.hide());
  const key = LENS.el("div", {class: "lens-key"});
  d.series.forEach((ser, k) => { const sp = LENS.el("span", {}, "\u25a0 " + ser.name); sp.style.color = colours[k % 6]; key.appendChild(sp); });
  body.appendChild(s);
  if (d.series.length > 1) body.appendChild(key);
};
