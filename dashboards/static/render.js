/* Draws dashboards from their data (dashboards/snapshot.py's BoardData) with uPlot: the live
 * view (/ui) and the static report use this one renderer. Every text from the store goes in
 * through textContent, never as markup. */
"use strict";

const WK = (() => {
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22", "#17becf"];
  // Every series has its colour and one of four dash patterns, so equal series stay visible
  // through each other's gaps; every point is marked while there are few.
  const DASHES = [[], [8, 4], [2, 3], [12, 3, 2, 3]];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function format(value, unit) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "number") return String(value);
    if (unit === "percentunit") return (value * 100).toFixed(Math.abs(value) < 0.1 ? 2 : 1) + "%";
    if (unit === "currencyUSD") {
      return Math.abs(value) >= 1 ? "$" + value.toLocaleString("en-US", {maximumFractionDigits: 2})
        : "$" + Number(value.toPrecision(3)).toString();
    }
    if (unit === "ms") {
      return Math.abs(value) >= 1000 ? (value / 1000).toFixed(2) + " s"
        : Number(value.toPrecision(3)).toString() + " ms";
    }
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    return Number(value.toPrecision(4)).toLocaleString("en-US", {maximumFractionDigits: 4});
  }

  function noData(text) {
    return el("p", {class: "nodata", text: text || "No data in this range"});
  }

  function statBody(panel) {
    if (panel.value === null || panel.value === undefined) return noData("No data");
    return el("span", {class: "value", text: format(panel.value, panel.unit)});
  }

  function tableBody(panel) {
    if (!panel.rows.length) return noData();
    // A column with long text wraps at word boundaries; the others never wrap.
    const long = panel.columns.map((_, i) => panel.rows.some(
      (row) => typeof row[i] === "string" && row[i].length > 40));
    const head = el("tr", {}, ...panel.columns.map((c) => el("th", {text: c})));
    const rows = panel.rows.map((row) => el("tr", {}, ...row.map((v, i) => el("td", {
      class: typeof v === "number" ? "num" : long[i] ? "text" : "",
      text: v === null ? "" : format(v, panel.units[i] || ""),
    }))));
    const more = panel.more_rows
      ? el("p", {class: "muted", text: panel.more_rows + " more rows not shown"}) : null;
    return el("div", {class: "table-wrap"}, el("table", {}, el("thead", {}, head),
                                               el("tbody", {}, ...rows)), more);
  }

  function yRange(unit) {
    return (_u, min, max) => {
      if (min === null || max === null) return [0, 1];
      const low = Math.min(0, min);
      let high = max > low ? max + (max - low) * 0.1 : max + 1;
      if (unit === "percentunit" && max <= 1) high = Math.min(Math.max(high, 0.05), 1);
      return [low, high];
    };
  }

  function chart(panel, board, body, onZoom) {
    const frame = panel.frame;
    if (!frame || !frame.times.length) { body.append(noData()); return null; }
    const sparse = frame.times.length < 60;
    const bars = panel.style === "bars";  // stacked: each series' values include those below
    const series = [{}].concat(frame.series.map((s, i) => {
      const colour = COLORS[(bars ? frame.series.length - 1 - i : i) % COLORS.length];
      return bars
        ? {label: s.name, stroke: colour, fill: colour, width: 1,
           paths: uPlot.paths.bars({size: [0.6, 48]}), points: {show: false},
           value: (_u, v) => format(v, panel.unit)}
        : {label: s.name, stroke: colour, width: 2, dash: DASHES[i % DASHES.length],
           spanGaps: true, points: {show: sparse, size: 6},
           value: (_u, v) => format(v, panel.unit)};
    }));
    const start = Date.parse(board.start) / 1000, end = Date.parse(board.end) / 1000;
    const options = {
      width: Math.max(body.clientWidth, 200), height: Math.max(body.clientHeight - 40, 100),
      series,
      // The board's range, widened to data outside it (a daily bucket starts before it);
      // fixed (auto: false), or uPlot stretches one x value to a thousand days.
      scales: {x: {time: true, auto: false,
                   range: [Math.min(start, frame.times[0]),
                           Math.max(end, frame.times[frame.times.length - 1])]},
               y: {range: yRange(panel.unit)}},
      axes: [{}, {values: (_u, ticks) => ticks.map((t) => format(t, panel.unit)), size: 70}],
      legend: {live: false},
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),  // the page speaks UTC
      fmtDate: (template) => uPlot.fmtDate(template.replace(/\{h\}/g, "{HH}")
        .replace(/\{aa\}/g, "").replace("{M}/{D}/{YY}", "{YYYY}-{MM}-{DD}")),  // 24 h, ISO
      cursor: {drag: {x: true, y: false}},
      hooks: {
        // what was drawn, for people's tools and the browser tests
        draw: [(u) => { body.dataset.xrange = `${u.scales.x.min},${u.scales.x.max}`; }],
        setSelect: onZoom ? [(u) => {
          if (u.select.width < 5) return;
          onZoom(u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x"));
        }] : [],
      },
    };
    const data = [frame.times].concat(frame.series.map((s) => s.values));
    const plot = new uPlot(options, data, body);
    new ResizeObserver(() => plot.setSize({
      width: Math.max(body.clientWidth, 200), height: Math.max(body.clientHeight - 40, 100),
    })).observe(body);
    return plot;
  }

  /* One board into `container`; returns the uPlot instances (to destroy on the next draw). */
  function renderBoard(container, board, options) {
    const opts = options || {};
    const grid = el("div", {class: "grid"});
    const section = el("section", {class: "board", "data-board": board.name,
                                   "data-start": board.start, "data-end": board.end},
      opts.heading ? el("h2", {text: board.title}) : null,
      el("p", {class: "muted", text: board.description}), grid);
    container.append(section);
    const plots = [];
    for (const panel of board.panels) {
      const g = panel.grid;
      const body = el("div", {class: "body"});
      const card = el("article", {
        class: "panel " + panel.kind, "data-panel": panel.title, title: panel.description,
      }, el("h3", {text: panel.title}), body);
      card.style.gridColumn = `${g.x + 1} / span ${g.w}`;  // CSSOM: allowed by the page's CSP
      card.style.gridRow = `${g.y + 1} / span ${g.h}`;
      grid.append(card);
      if (panel.error) body.append(el("p", {class: "error", text: "Query failed: " + panel.error}));
      else if (panel.kind === "stat") body.append(statBody(panel));
      else if (panel.kind === "table") body.append(tableBody(panel));
      else {
        const plot = chart(panel, board, body, opts.onZoom);
        if (plot) plots.push(plot);
      }
      card.dataset.state = panel.error ? "error"
        : body.querySelector(".nodata") ? "nodata" : "data";
    }
    return plots;
  }

  function when(iso) {
    return new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function renderReport() {
    const snapshot = JSON.parse(document.getElementById("snapshot").textContent);
    const main = document.querySelector("main");
    const first = snapshot.boards[0];
    if (first) {
      main.append(el("p", {class: "muted", text: `${when(first.start)} to ${when(first.end)}, ` +
        `database ${snapshot.database}, generated ${when(snapshot.generated_at)}`}));
    }
    for (const board of snapshot.boards) renderBoard(main, board, {heading: true});
    document.body.dataset.rendered = "true";
  }

  if (document.body.dataset.page === "report") {
    window.addEventListener("DOMContentLoaded", renderReport);
  }
  return {el, format, renderBoard, noData, when};
})();
