// The streams pages: GET /v1/streams (the team's streams), GET /v1/streams/NAME?last=N (one stream's statistics
// and its newest N events), POST /v1/streams/NAME/reset. The plot's running min/max are computed here from the
// events, as the history computes them: each event's statistics count that event itself.
"use strict";

xmore.start(async () => {
  const { getJSON, el, fixed, streamPath, showError, clearError, root } = xmore;
  const $ = (id) => document.getElementById(id);
  const name = $("main").dataset.stream;
  if (name === undefined) await listStreams();
  else await showStream(name);

  async function listStreams() {
    const streams = await getJSON("/v1/streams");
    const body = document.querySelector("#streams tbody");
    body.replaceChildren(...streams.map((s) => el("tr", {},
      el("td", {}, el("a", { href: `${root}/streams/${streamPath(s.stream)}` }, s.stream)),
      el("td", {}, s.method || ""),
      el("td", { class: "num" }, s.n_events),
      el("td", { class: "num" }, fixed(s.image.min)), el("td", { class: "num" }, fixed(s.image.max)),
      el("td", { class: "num" }, fixed(s.text.min)), el("td", { class: "num" }, fixed(s.text.max)),
      el("td", {}, new Date(s.created_at).toLocaleString()))));
    $("streams-note").textContent = streams.length ? `${streams.length} stream(s)`
      : "No streams yet: classify images into one on the Classify page.";
  }

  async function showStream(stream) {
    const PAGE = 25;
    const PLOT_EVENTS = 2000; // the newest events fetched at first: the plot's and the first pages' rows
    const path = `/v1/streams/${streamPath(stream)}`;
    let info = await getJSON(path, { query: { last: PLOT_EVENTS } });
    let page = 0;
    $("stream-view").hidden = false;

    async function ensure(count) { // the newest `count` events loaded (paging past the first fetch)
      if (info.events.length >= Math.min(count, info.n_events)) return;
      info = await getJSON(path, { query: { last: count } });
      plot(info);
    }

    function summary() {
      $("stream-summary").textContent = `${info.n_events} events · method ${info.method || "xmore"} · `
        + `c_I ${fixed(info.image.min)}–${fixed(info.image.max)} · c_T ${fixed(info.text.min)}–${fixed(info.text.max)}`
        + ` · created ${new Date(info.created_at).toLocaleString()}`;
    }

    async function showPage() {
      await ensure((page + 1) * PAGE);
      const newest = [...info.events].reverse().slice(page * PAGE, (page + 1) * PAGE);
      document.querySelector("#events tbody").replaceChildren(...newest.map((e) => el("tr", { "data-seq": e.seq },
        el("td", { class: "num" }, e.seq),
        el("td", {}, e.query || ""),
        el("td", {}, e.prediction),
        el("td", { class: "num" }, fixed(e.c_image)), el("td", { class: "num" }, fixed(e.c_text)),
        el("td", { class: "num" }, fixed(e.w_image)), el("td", { class: "num" }, fixed(e.w_text)),
        el("td", {}, e.key_id ?? ""),
        el("td", {}, new Date(e.created_at).toLocaleString()))));
      const first = page * PAGE + 1;
      $("page-line").textContent = info.n_events
        ? `events ${first}–${Math.min(info.n_events, first + PAGE - 1)} of ${info.n_events}, newest first` : "no events";
      $("newer").disabled = page === 0;
      $("older").disabled = (page + 1) * PAGE >= info.n_events;
    }

    $("newer").addEventListener("click", () => { page = Math.max(0, page - 1); showPage().catch(showError); });
    $("older").addEventListener("click", () => { page += 1; showPage().catch(showError); });
    $("reset").addEventListener("click", () => {
      $("reset-question").textContent = `Delete all ${info.n_events} events of stream ${stream}? `
        + "Its statistics start again from nothing. This cannot be undone.";
      $("reset-confirm").hidden = false;
      $("reset-no").focus();
    });
    $("reset-no").addEventListener("click", () => { $("reset-confirm").hidden = true; $("reset").focus(); });
    $("reset-yes").addEventListener("click", async () => {
      $("reset-confirm").hidden = true;
      clearError();
      try {
        const done = await getJSON(`${path}/reset`, { method: "POST" });
        $("reset-done").textContent = `Stream ${done.stream} reset: ${done.events_removed} events removed.`;
        info = { ...info, n_events: 0, events: [] };
        page = 0;
        summary();
        plot(info);
        await showPage();
      } catch (error) {
        showError(error);
      }
    });

    summary();
    plot(info);
    await showPage();
  }

  // Running min and max of `values` (null: no value at that event; the statistics skip it).
  function running(values) {
    let low = null;
    let high = null;
    return values.map((v) => {
      if (v !== null && v !== undefined) {
        low = low === null ? v : Math.min(low, v);
        high = high === null ? v : Math.max(high, v);
      }
      return [low, high];
    });
  }

  function plot(info) {
    const box = $("plot");
    const events = info.events;
    const partial = events.length < info.n_events;
    $("plot-note").textContent = partial
      ? `The plot shows the newest ${events.length} of ${info.n_events} events; its running min/max start at seq `
        + `${events[0].seq}, while the stream's own cover all events (c_I ${fixed(info.image.min)}–`
        + `${fixed(info.image.max)}).` : "";
    if (!events.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No events to plot."));
      return;
    }
    const W = 800, H = 260, L = 48, R = 12, T = 12, B = 30;
    const seqs = events.map((e) => e.seq);
    const image = events.map((e) => e.c_image);
    const text = events.map((e) => e.c_text);
    const imageRange = running(image);
    const textRange = running(text);
    const all = [...image, ...text].filter((v) => v !== null && v !== undefined);
    let low = Math.min(...all), high = Math.max(...all);
    if (high - low < 1e-9) { low -= 0.05; high += 0.05; }
    const pad = (high - low) * 0.06;
    low -= pad; high += pad;
    const first = seqs[0], last = seqs[seqs.length - 1];
    const x = (seq) => L + (last === first ? (W - L - R) / 2 : ((seq - first) / (last - first)) * (W - L - R));
    const y = (v) => T + (1 - (v - low) / (high - low)) * (H - T - B);
    const line = (values, cls) => {
      const points = values.map((v, i) => (v === null || v === undefined ? null : `${x(seqs[i]).toFixed(1)},${y(v).toFixed(1)}`))
        .filter(Boolean).join(" ");
      return el("svg:polyline", { points, class: cls });
    };
    const step = (pairs, which, cls) => { // a step line: a running bound changes at an event and holds after it
      const points = [];
      let previous = null;
      pairs.forEach((pair, i) => {
        const v = pair[which];
        if (v === null) return;
        if (previous !== null && previous !== v) points.push(`${x(seqs[i]).toFixed(1)},${y(previous).toFixed(1)}`);
        points.push(`${x(seqs[i]).toFixed(1)},${y(v).toFixed(1)}`);
        previous = v;
      });
      return el("svg:polyline", { points: points.join(" "), class: cls });
    };
    const dots = (values, cls) => (values.length > 300 ? [] : values.map((v, i) => (v === null || v === undefined
      ? null : el("svg:circle", { cx: x(seqs[i]).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: cls },
        el("svg:title", {}, `seq ${seqs[i]}: ${fixed(v)}`)))));
    const ticks = [low + pad, (low + high) / 2, high - pad].map((v) => [
      el("svg:line", { x1: L, x2: W - R, y1: y(v).toFixed(1), y2: y(v).toFixed(1), class: "grid-line" }),
      el("svg:text", { x: L - 6, y: (y(v) + 4).toFixed(1), class: "tick", "text-anchor": "end" }, fixed(v, 2))]);
    const svg = el("svg:svg", {
      viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart",
      "aria-label": `c_I and c_T of events ${first} to ${last}, with their running min and max`,
    },
    ticks,
    el("svg:line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }),
    el("svg:line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }),
    el("svg:text", { x: L, y: H - 8, class: "tick", "text-anchor": "start" }, `seq ${first}`),
    el("svg:text", { x: W - R, y: H - 8, class: "tick", "text-anchor": "end" }, `seq ${last}`),
    step(imageRange, 0, "bound bound-image"), step(imageRange, 1, "bound bound-image"),
    step(textRange, 0, "bound bound-text"), step(textRange, 1, "bound bound-text"),
    line(image, "series series-image"), line(text, "series series-text"),
    dots(image, "dot dot-image"), dots(text, "dot dot-text"));
    box.replaceChildren(svg);
  }
});
