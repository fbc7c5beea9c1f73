/* Circuit graph: layered nodes, edges coloured by sign and sized by |score|; a slider picks a
   precomputed circuit size and updates the edges drawn and the faithfulness read-out. */
"use strict";
LENS.views.circuit = function (body, d) {
  const nrows = Math.max(1, ...d.nodes.map((n) => Math.ceil(n.row) + 1));
  const colW = Math.max(18, Math.min(90, Math.floor(1100 / Math.max(1, d.ncols))));
  const rowH = Math.max(12, Math.min(34, Math.floor(520 / nrows)));
  const L = 30, T = 24, W = L + d.ncols * colW + 30, H = T + nrows * rowH + 30;
  const px = (n) => L + n.col * colW + colW / 2, py = (n) => T + n.row * rowH + rowH / 2;
  const maxAbs = Math.max(1e-12, ...d.edges.map((e) => Math.abs(e[2])));
  const s = LENS.svg("svg", {width: W, height: H, class: "lens-circuit"});
  d.colLabels.forEach((lab, c) => {
    if (lab) s.appendChild(LENS.svg("text", {x: L + c * colW + colW / 2, y: 14, "text-anchor": "middle", class: "axis"}, lab));
  });
  const gEdges = LENS.svg("g", {}), gNodes = LENS.svg("g", {});
  s.appendChild(gEdges); s.appendChild(gNodes);
  const edgeEls = d.edges.map((e, i) => {
    const a = d.nodes[e[0]], b = d.nodes[e[1]];
    const x1 = px(a), y1 = py(a), x2 = px(b), y2 = py(b), mx = (x1 + x2) / 2;
    const p = LENS.svg("path", {d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: "edge",
      stroke: e[2] >= 0 ? "#1f5fa8" : "#c0392b", "stroke-width": (0.6 + 4 * Math.abs(e[2]) / maxAbs).toFixed(2),
      fill: "none", "data-i": i});
    gEdges.appendChild(p);
    return p;
  });
  const nodeEls = d.nodes.map((n, i) => {
    const c = LENS.svg("circle", {cx: px(n), cy: py(n), r: Math.min(6, rowH / 3), class: "node", "data-n": i});
    gNodes.appendChild(c);
    return c;
  });
  s.addEventListener("mousemove", (ev) => {
    const t = ev.target;
    if (t.dataset && t.dataset.i !== undefined) {
      const e = d.edges[Number(t.dataset.i)];
      LENS.tip.show(ev, [["edge", d.nodes[e[0]].label + " \u2192 " + e[4]], ["score", LENS.fmt(e[2], 5), "value"], ["rank", String(Number(t.dataset.i) + 1)]]);
    } else if (t.dataset && t.dataset.n !== undefined) {
      LENS.tip.show(ev, [["node", d.nodes[Number(t.dataset.n)].label]]);
    } else LENS.tip.hide();
  });
  s.addEventListener("mouseleave", () => LENS.tip.hide());
  const controls = LENS.el("div", {class: "lens-controls"});
  const slider = LENS.el("input", {type: "range", min: 0, max: d.steps.length - 1, step: 1, value: d.start, class: "edge-slider", "aria-label": "circuit size"});
  const readout = LENS.el("span", {class: "readout"});
  controls.appendChild(LENS.el("span", {}, "edges kept: "));
  controls.appendChild(slider); controls.appendChild(readout);
  body.appendChild(controls);
  const curve = d.steps.some((st) => st.faithfulness !== null) ? LENS.svg("svg", {width: 300, height: 120, class: "lens-curve"}) : null;
  const row = LENS.el("div", {class: "lens-row"});
  const plot = LENS.el("div", {class: "lens-plot"});
  plot.appendChild(s); row.appendChild(plot);
  if (curve) row.appendChild(curve);
  body.appendChild(row);
  function drawCurve(k) {
    if (!curve) return;
    curve.textContent = "";
    const f = d.steps.map((st) => st.faithfulness), ok = f.filter((v) => v !== null);
    const lo = Math.min(0, ...ok), hi = Math.max(1, ...ok), n = d.steps.length;
    const x = (i) => 40 + i * 250 / Math.max(1, n - 1), y = (v) => 10 + 80 * (1 - (v - lo) / ((hi - lo) || 1));
    curve.appendChild(LENS.svg("line", {x1: 40, x2: 290, y1: y(1), y2: y(1), class: "frame dashed"}));
    curve.appendChild(LENS.svg("text", {x: 36, y: y(1) + 4, "text-anchor": "end", class: "axis"}, "1"));
    curve.appendChild(LENS.svg("text", {x: 36, y: y(0) + 4, "text-anchor": "end", class: "axis"}, "0"));
    let path = "";
    f.forEach((v, i) => { if (v !== null) path += (path ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1); });
    curve.appendChild(LENS.svg("path", {d: path, fill: "none", stroke: "#1f5fa8", "stroke-width": 1.5}));
    if (f[k] !== null) curve.appendChild(LENS.svg("circle", {cx: x(k), cy: y(f[k]), r: 4, class: "current"}));
    curve.appendChild(LENS.svg("text", {x: 165, y: 114, "text-anchor": "middle", class: "axis"}, "faithfulness vs circuit size"));
  }
  function update() {
    const k = Number(slider.value), st = d.steps[k];
    const used = new Set();
    let shown = 0;
    edgeEls.forEach((p, i) => {
      const on = d.edges[i][3] <= k;
      p.setAttribute("data-on", on ? "1" : "0");
      p.style.display = on ? "" : "none";
      if (on) { shown++; used.add(d.edges[i][0]); used.add(d.edges[i][1]); }
    });
    nodeEls.forEach((c, i) => c.setAttribute("class", used.has(i) ? "node" : "node off"));
    readout.setAttribute("data-edges", shown);
    readout.textContent = `${shown} edges (top ${st.size} by |score|, pruned to input\u2192logits paths)` +
      (st.faithfulness === null ? "" : ` \u00b7 faithfulness ${LENS.fmt(st.faithfulness, 3)}`);
    drawCurve(k);
  }
  slider.addEventListener("input", update);
  update();
  if (d.cpr !== null && d.cpr !== undefined) body.appendChild(LENS.el("p", {class: "note"}, `CPR ${LENS.fmt(d.cpr, 3)} (area under faithfulness, higher is better) \u00b7 CMD ${LENS.fmt(d.cmd, 3)} (area under |1 - faithfulness|, lower is better)`));
};
