/* Attention patterns: layer and head selectors, query x key grid, hover shows the weight. */
"use strict";
LENS.views.attention = function (body, d) {
  const n = d.tokens.length, nh = d.heads, nl = d.layers.length;
  const block = d.causal ? n * (n + 1) / 2 : n * n;
  const all = LENS.f16(d.data);
  let layer = 0, head = 0;
  const at = (q, k) => {
    const base = (layer * nh + head) * block;
    if (d.causal) return k > q ? 0 : all[base + q * (q + 1) / 2 + k];
    return all[base + q * n + k];
  };
  const cs = Math.max(5, Math.min(22, Math.floor(640 / Math.max(1, n))));
  const lab = Math.min(12, Math.max(...d.tokens.map((t) => LENS.tok(t).length), 1));
  const left = 14 + 6.5 * lab, top = 14 + 6.5 * lab;
  const holder = LENS.el("div", {class: "lens-plot"});
  const [lw] = LENS.select("layer", d.layers.map(String), (i) => { layer = i; draw(); });
  const [hw] = LENS.select("head", Array.from({length: nh}, (_, i) => String(i)), (i) => { head = i; draw(); });
  lw.classList.add("layer-select"); hw.classList.add("head-select");
  const bar = LENS.el("div", {class: "lens-controls"});
  bar.appendChild(lw); bar.appendChild(hw);
  body.appendChild(bar);
  body.appendChild(holder);
  const white = [255, 255, 255], ink = [8, 48, 107];
  function draw() {
    const s = LENS.svg("svg", {width: left + n * cs + 10, height: top + n * cs + 10, class: "lens-attention", "data-layer": layer, "data-head": head});
    for (let i = 0; i < n; i++) {
      s.appendChild(LENS.svg("text", {x: left - 4, y: top + i * cs + cs / 2 + 4, "text-anchor": "end", class: "axis"}, cs >= 9 ? LENS.short(d.tokens[i], 12) : ""));
      const x = left + i * cs + cs / 2, y = top - 4;
      s.appendChild(LENS.svg("text", {x: x, y: y, transform: "rotate(-60 " + x + " " + y + ")", class: "axis"}, cs >= 9 ? LENS.short(d.tokens[i], 12) : ""));
    }
    for (let q = 0; q < n; q++) {
      for (let k = 0; k < n; k++) {
        if (d.causal && k > q) continue;
        const v = at(q, k);
        s.appendChild(LENS.svg("rect", {x: left + k * cs, y: top + q * cs, width: cs - 0.5, height: cs - 0.5, fill: LENS.mix(white, ink, Math.sqrt(v)), "data-q": q, "data-k": k, class: "cell"}));
      }
    }
    s.addEventListener("mousemove", (ev) => {
      const t = ev.target;
      if (!t.classList || !t.classList.contains("cell")) { LENS.tip.hide(); return; }
      const q = Number(t.dataset.q), k = Number(t.dataset.k);
      LENS.tip.show(ev, [["layer / head", d.layers[layer] + " / " + head],
        ["query", q + " " + LENS.tok(d.tokens[q])], ["key", k + " " + LENS.tok(d.tokens[k])],
        ["weight", LENS.fmt(at(q, k), 4), "value"]]);
    });
    s.addEventListener("mouseleave", () => LENS.tip.hide());
    holder.textContent = "";
    holder.appendChild(s);
  }
  draw();
};
