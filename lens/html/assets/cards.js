/* Feature cards: top contexts with tokens shaded by activation, histogram, top +/- logits. */
"use strict";
LENS.views.cards = function (body, d) {
  const list = LENS.el("div", {class: "lens-cards"});
  const pick = LENS.el("input", {type: "search", placeholder: "filter features", class: "card-filter"});
  body.appendChild(pick); body.appendChild(list);
  const cards = d.cards.map((c) => {
    const card = LENS.el("article", {class: "lens-card", "data-id": String(c.id)});
    card.appendChild(LENS.el("h3", {dir: "auto"}, c.title || ("feature " + c.id)));
    if (c.stats) {
      const st = LENS.el("p", {class: "note"});
      st.textContent = Object.keys(c.stats).map((k) => k + " " + (typeof c.stats[k] === "number" ? LENS.fmt(c.stats[k], 4) : c.stats[k])).join(" \u00b7 ");
      card.appendChild(st);
    }
    const cols = LENS.el("div", {class: "lens-row"});
    if (c.histogram && c.histogram.counts.length) cols.appendChild(hist(c.histogram));
    if (c.logits) cols.appendChild(logits(c.logits));
    card.appendChild(cols);
    const max = Math.max(1e-12, ...c.contexts.map((x) => Math.max(...x.acts.map(Math.abs))));
    for (const ctx of c.contexts) {
      const line = LENS.el("div", {class: "ctx", dir: "auto"});
      if (ctx.label) line.appendChild(LENS.el("span", {class: "ctx-label"}, ctx.label));
      ctx.tokens.forEach((t, i) => {
        const a = ctx.acts[i];
        const sp = LENS.el("span", {class: "tk", "data-act": a}, LENS.tok(t));
        const u = Math.min(1, Math.abs(a) / max);
        sp.style.background = a >= 0 ? `rgba(230,120,20,${u.toFixed(3)})` : `rgba(40,90,200,${u.toFixed(3)})`;
        sp.addEventListener("mousemove", (ev) => LENS.tip.show(ev, [["token", LENS.tok(t)], ["activation", LENS.fmt(a, 4), "value"]]));
        sp.addEventListener("mouseleave", () => LENS.tip.hide());
        line.appendChild(sp);
      });
      card.appendChild(line);
    }
    list.appendChild(card);
    return [card, (String(c.id) + " " + (c.title || "")).toLowerCase()];
  });
  pick.addEventListener("input", () => {
    const q = pick.value.toLowerCase();
    for (const [card, text] of cards) card.style.display = text.includes(q) ? "" : "none";
  });
  function hist(h) {
    const W = 260, H = 110, n = h.counts.length, top = Math.max(1, ...h.counts);
    const s = LENS.svg("svg", {width: W, height: H, class: "lens-hist"});
    h.counts.forEach((c, i) => {
      const bh = 80 * Math.log1p(c) / Math.log1p(top), x = 10 + i * (W - 20) / n;  // log scale
      const r = LENS.svg("rect", {x: x, y: 90 - bh, width: Math.max(1, (W - 20) / n - 1), height: bh, class: "bar", "data-i": i});
      r.addEventListener("mousemove", (ev) => LENS.tip.show(ev, [["activation", LENS.fmt(h.edges[i], 3) + " .. " + LENS.fmt(h.edges[i + 1], 3)], ["count", String(c), "value"]]));
      r.addEventListener("mouseleave", () => LENS.tip.hide());
      s.appendChild(r);
    });
    s.appendChild(LENS.svg("text", {x: 10, y: 104, class: "axis"}, LENS.fmt(h.edges[0], 2)));
    s.appendChild(LENS.svg("text", {x: W - 10, y: 104, "text-anchor": "end", class: "axis"}, LENS.fmt(h.edges[n], 2)));
    s.appendChild(LENS.svg("text", {x: W / 2, y: 104, "text-anchor": "middle", class: "axis"}, "count (log scale)"));
    return s;
  }
  function logits(lg) {
    const t = LENS.el("table", {class: "lens-logits"});
    const head = LENS.el("tr", {});
    head.appendChild(LENS.el("th", {}, "promoted")); head.appendChild(LENS.el("th", {}, ""));
    head.appendChild(LENS.el("th", {}, "suppressed")); head.appendChild(LENS.el("th", {}, ""));
    t.appendChild(head);
    const pos = lg.positive || [], neg = lg.negative || [];
    for (let i = 0; i < Math.max(pos.length, neg.length); i++) {
      const tr = LENS.el("tr", {});
      for (const [side, cls] of [[pos, "pos"], [neg, "neg"]]) {
        tr.appendChild(LENS.el("td", {class: "tok " + cls, dir: "auto"}, side[i] ? LENS.tok(side[i][0]) : ""));
        tr.appendChild(LENS.el("td", {class: "num"}, side[i] ? LENS.fmt(side[i][1], 3) : ""));
      }
      t.appendChild(tr);
    }
    return t;
  }
};
