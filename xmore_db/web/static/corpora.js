// The corpora page: the store from GET /v1/status (backend, sizes, models), each corpus from GET /v1/corpora and
// GET /v1/corpora/NAME (units by status, rows, skipped rows by reason). While an ingest runs, it refreshes.
"use strict";

xmore.start(async (status) => {
  const { getJSON, el, showError, clearError } = xmore;
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 5000;
  const number = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en"));

  function showStore(s) {
    const p = s.provenance || {};
    const cache = s.caption_cache;
    const facts = [
      ["vector store", `${s.vector_backend} at ${s.vector_location}`],
      ["images", number((s.collections || {}).images)],
      ["texts", number((s.collections || {}).texts)],
      ["coarse model", p.coarse_model ? `${p.coarse_model} (${p.coarse_dim}-d)` : "–"],
      ["fine model", p.fine_model ? `${p.fine_model} (${p.fine_dim}-d)` : "–"],
      ["caption cache", cache ? `${cache.model} (${cache.dim}-d)` : "none"],
      ["database", `${s.database} at revision ${s.database_revision}`],
    ];
    $("store").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  // Skipped rows by reason: the corpus' own sum, else summed over its unit records.
  function skipReasons(detail) {
    if (detail.skip_reasons) return detail.skip_reasons;
    const reasons = {};
    for (const unit of detail.unit_records || []) {
      for (const [reason, count] of Object.entries(unit.skip_reasons || {})) reasons[reason] = (reasons[reason] || 0) + count;
    }
    return reasons;
  }

  const isRunning = (corpus) => (corpus.ingest || {}).status === "running" || (corpus.units_by_status || {}).running > 0;

  // The running ingest's rows against those expected; otherwise the units done against all units.
  function progressLine(corpus) {
    const ingest = corpus.ingest || {};
    const id = `progress-${corpus.corpus}`;
    if (ingest.status === "running") {
      const expected = ingest.rows_expected || 0;
      return el("div", { class: "progress-line" },
        el("label", { for: id }, `ingesting from ${ingest.source}: ${number(ingest.rows)} rows read`
          + (expected ? ` of about ${number(expected)}` : "")),
        el("progress", expected ? { id, max: expected, value: Math.min(ingest.rows || 0, expected) } : { id }));
    }
    const byStatus = corpus.units_by_status || {};
    const units = corpus.units || Object.values(byStatus).reduce((a, b) => a + b, 0);
    const done = byStatus.done || 0;
    return el("div", { class: "progress-line" },
      el("label", { for: id }, `${done} of ${units} units done`),
      el("progress", { id, max: units || 1, value: done }));
  }

  function lastIngest(corpus) {
    const ingest = corpus.ingest || {};
    if (ingest.status === "failed") return el("p", { class: "muted" }, `last ingest over HTTP failed: ${ingest.error}`);
    const last = ingest.last;
    if (!last) return null;
    return el("p", { class: "muted" }, `last ingest over HTTP: ${number(last.ingested)} pairs ingested, `
      + `${number(last.skipped)} rows skipped, ${last.units_done} units done, ${last.units_failed} failed, in ${last.seconds} s`);
  }

  function corpusCard(corpus, detail) {
    const byStatus = corpus.units_by_status || {};
    const reasons = skipReasons(detail || {});
    const points = corpus.points || (detail && detail.points) || {};
    const team = corpus.team === undefined ? null : corpus.team === null ? "the open team" : `team ${corpus.team}`;
    return el("article", { class: "panel corpus", "data-corpus": corpus.corpus },
      el("h3", {}, corpus.corpus,
        el("span", { class: "muted" }, ` · ${corpus.kind} from ${corpus.source}${team ? ` · ${team}` : ""}`)),
      progressLine(corpus),
      el("dl", { class: "facts wide" },
        Object.entries(byStatus).flatMap(([state, count]) => [el("dt", {}, `units ${state}`), el("dd", {}, number(count))]),
        el("dt", {}, "rows read"), el("dd", {}, number(corpus.rows)),
        el("dt", {}, "pairs ingested"), el("dd", {}, number(corpus.ingested)),
        el("dt", {}, "rows skipped"), el("dd", {}, number(corpus.skipped)),
        el("dt", {}, "points"), el("dd", {}, `${number(points.images)} images, ${number(points.texts)} texts`)),
      lastIngest(corpus),
      Object.keys(reasons).length
        ? el("table", { class: "data reasons" },
          el("caption", {}, "Skipped rows by reason"),
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "reason"), el("th", { scope: "col", class: "num" }, "rows"))),
          el("tbody", {}, Object.entries(reasons).sort((a, b) => b[1] - a[1]).map(([reason, count]) =>
            el("tr", {}, el("td", {}, reason), el("td", { class: "num" }, number(count))))))
        : el("p", { class: "muted" }, "No rows skipped."));
  }

  async function refresh(first) {
    if (!first) showStore(await getJSON("/v1/status"));
    const corpora = await getJSON("/v1/corpora");
    const details = await Promise.all(corpora.map((c) =>
      getJSON(`/v1/corpora/${encodeURIComponent(c.corpus)}`).catch((error) => ({ error }))));
    $("corpora").replaceChildren(...corpora.map((c, i) => corpusCard(c, details[i].error ? null : details[i])));
    const failed = details.find((d) => d.error);
    if (failed) showError(failed.error);
    const ingesting = corpora.some(isRunning);
    $("corpora-note").textContent = !corpora.length ? "No corpora yet."
      : `${corpora.length} corpora${ingesting ? " · an ingest is running: refreshed every 5 s" : ""}`;
    if (ingesting) setTimeout(() => refresh(false).catch(showError), REFRESH_MS);
  }

  showStore(status);
  clearError();
  await refresh(true);
});
