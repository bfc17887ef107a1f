/* The live view at /ui: dashboards with a time range, variables and auto-refresh, and the
 * review queue. It talks to the agent's own API (/api/dashboards, /api/flags, /api/reviews)
 * with the session cookie the login form set; the state lives in the URL, so a view can be
 * bookmarked and shared. */
"use strict";

(() => {
  const {el, renderBoard, noData, when} = WK;
  const RANGES = [["fit", "Fit to data (last 24 h)"], ["now-5m", "Last 5 minutes"],
                  ["now-15m", "Last 15 minutes"], ["now-1h", "Last hour"],
                  ["now-6h", "Last 6 hours"], ["now-24h", "Last 24 hours"],
                  ["now-7d", "Last 7 days"]];
  const ALL = "$__all";  // Grafana's value for every option of a variable
  const REFRESH = [["0", "Off"], ["10", "10 s"], ["30", "30 s"], ["60", "1 min"]];
  const main = document.querySelector("main");

  async function api(path, init) {
    const response = await fetch(path, Object.assign({credentials: "same-origin"}, init || {}));
    if (response.status === 401) {
      location.assign("/ui/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new Error("login needed");
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function params() { return new URLSearchParams(location.search); }

  function go(changes) {
    const next = params();
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) next.delete(key); else next.set(key, value);
    }
    history.pushState(null, "", "?" + next.toString());
    load();
  }

  function select(label, name, choices, current, onChange) {
    const node = el("select", {name, onchange: (e) => onChange(e.target.value)},
      ...choices.map(([value, text]) => {
        const option = el("option", {value, text});
        if (value === current) option.selected = true;
        return option;
      }));
    return el("label", {}, label, node);
  }

  let plots = [], timer = null, board = null;

  function controls(boards, data) {
    const p = params();
    const range = p.get("from") && p.get("from").startsWith("now") || !p.get("from")
      ? (p.get("from") || "fit") : "custom";
    const ranges = range === "custom" ? RANGES.concat([["custom", `${when(data.start)} to ` +
      `${when(data.end)}`]]) : RANGES;
    const bar = el("div", {class: "controls"},
      select("Time range", "range", ranges, range,
             (v) => go({from: v === "custom" ? null : v, to: null})),
      ...data.variables.map((v) => select(v.label, "var-" + v.name,
        [[ALL, "All"]].concat(v.options.map((o) => [o, o || "(empty)"])),
        p.has("var-" + v.name) ? v.selected[0] : ALL,
        (value) => go({["var-" + v.name]: value === ALL ? null : value}))),
      select("Refresh", "refresh", REFRESH, p.get("refresh") || "30",
             (v) => go({refresh: v})),
      el("span", {class: "muted", id: "updated",
                  text: `${when(data.start)} to ${when(data.end)} · every ` +
                        `${data.interval_s} s · updated ` +
                        `${new Date().toISOString().slice(11, 19)} UTC`}));
    const tabs = el("nav", {class: "tabs"}, ...boards.map((b) => {
      const next = new URLSearchParams({board: b.name});
      for (const key of ["from", "to", "refresh"]) if (p.get(key)) next.set(key, p.get(key));
      return el("a", {href: "?" + next.toString(), class: b.name === data.name ? "active" : "",
                      text: b.title.replace(/^Watchkeeper · /, "")});
    }));
    return [tabs, bar];
  }

  async function loadBoard() {
    const p = params();
    const {boards} = await api("/api/dashboards");
    const name = p.get("board") || boards[0].name;
    const query = new URLSearchParams({from: p.get("from") || "fit", to: p.get("to") || "now"});
    for (const [key, value] of p) if (key.startsWith("var-")) query.append(key, value);
    board = await api(`/api/dashboards/${encodeURIComponent(name)}?${query}`);
    for (const plot of plots) plot.destroy();
    main.replaceChildren(...controls(boards, board));
    plots = renderBoard(main, board, {onZoom: (from, to) => go({
      from: String(Math.floor(from * 1000)), to: String(Math.ceil(to * 1000))})});
    document.title = board.title;
    const every = Number(p.get("refresh") || "30");
    if (every > 0) timer = setTimeout(load, every * 1000);
  }

  function flagCard(view, reviewer) {
    const flag = view.flag;
    const status = view.review ? view.review.verdict : "open";
    const correction = el("textarea", {name: "correction",
      placeholder: "The answer the model should have given (optional, with Confirm)"});
    if (view.review && view.review.correction) correction.value = view.review.correction;
    const note = el("input", {name: "note", placeholder: "Note (optional)"});
    const result = el("span", {class: "muted"});
    async function verdict(kind) {
      result.textContent = "saving…";
      try {
        await api("/api/reviews", {method: "POST",
          headers: {"Content-Type": "application/json", "X-Watchkeeper-UI": "1"},
          body: JSON.stringify({flag_ids: [flag.flag_id], verdict: kind,
                                reviewer: reviewer.value || "ui", note: note.value,
                                correction: kind === "confirmed" ? correction.value : ""})});
        localStorage.setItem("watchkeeper.reviewer", reviewer.value);
        card.querySelector(".status").textContent = kind;
        card.querySelector(".status").className = "status " + kind;
        card.dataset.status = kind;
        result.textContent = "saved";
      } catch (error) { result.textContent = "not saved: " + error.message; }
    }
    const card = el("article", {class: "flag", "data-flag": flag.flag_id, "data-status": status},
      el("div", {class: "meta"},
        el("span", {class: "status " + status, text: status}),
        el("span", {text: flag.source + " · " + flag.label}),
        el("span", {text: "score " + flag.score.toFixed(3)}),
        el("span", {text: flag.service}),
        el("span", {text: when(flag.ts)}),
        el("span", {text: flag.reason})),
      el("h4", {text: "Prompt"}), el("pre", {class: "prompt", text: view.prompt}),
      el("h4", {text: "Completion"}), el("pre", {class: "completion", text: view.completion}),
      correction, note,
      el("div", {class: "actions"},
        el("button", {class: "confirm", type: "button", text: "Confirm",
                      onclick: () => verdict("confirmed")}),
        el("button", {class: "reject", type: "button", text: "Reject",
                      onclick: () => verdict("rejected")}), result));
    return card;
  }

  async function loadReview() {
    const p = params();
    const status = p.get("status") || "open";
    const query = new URLSearchParams({status, limit: "100"});
    if (p.get("source")) query.set("source", p.get("source"));
    const {flags} = await api("/api/flags?" + query);
    const reviewer = el("input", {name: "reviewer", placeholder: "you@example.com",
                                  value: localStorage.getItem("watchkeeper.reviewer") || ""});
    const bar = el("div", {class: "controls"},
      select("Status", "status", [["open", "Open"], ["confirmed", "Confirmed"],
                                  ["rejected", "Rejected"], ["all", "All"]], status,
             (v) => go({status: v})),
      el("label", {}, "Reviewer", reviewer),
      el("span", {class: "muted", text: `${flags.length} flags · Confirm: the watcher was ` +
        "right (a correction makes a preference pair for export --format dpo); " +
        "Reject: a false alarm"}));
    main.replaceChildren(bar, ...(flags.length ? flags.map((f) => flagCard(f, reviewer))
                                  : [noData("No " + (status === "all" ? "" : status + " ") +
                                            "flags")]));
    document.title = "Review queue";
  }

  async function load() {
    clearTimeout(timer);
    try {
      if (document.body.dataset.page === "review") await loadReview();
      else await loadBoard();
      document.body.dataset.rendered = "true";
    } catch (error) {
      if (error.message !== "login needed") {
        main.replaceChildren(el("p", {class: "error", text: error.message}));
      }
    }
  }

  window.addEventListener("popstate", load);
  window.addEventListener("DOMContentLoaded", load);
})();
