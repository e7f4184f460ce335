// The search page: POST /v1/search (text) or /v1/search/image (an image), a grid of hits, paging by offset.
// Clicking a hit's caption searches by that text; clicking its image searches by that image.
"use strict";

xmore.start(async () => {
  const { api, getJSON, el, fixed, webUrl, showError, clearError, showThumbnail, thumbnailBlob } = xmore;
  const $ = (id) => document.getElementById(id);
  const form = $("search-form");
  const text = $("q");
  const file = $("image");
  const corpora = $("corpora");
  const perPage = $("per-page");
  const hitsBox = $("hits");
  let query = null; // {text} or {image: Blob, name}
  let offset = 0;
  let imageSearch = true; // false once the service has answered that it has no image search

  const chosenCorpora = () => corpora.value.split(",").map((c) => c.trim()).filter(Boolean);

  async function fetchHits(n) {
    const names = chosenCorpora();
    if (query.image && imageSearch) {
      const body = new FormData();
      body.append("image", query.image, query.name);
      body.append("n", n);
      body.append("offset", offset);
      if (names.length) body.append("corpora", names.join(","));
      try {
        return await getJSON("/v1/search/image", { method: "POST", form: body });
      } catch (error) {
        if (!(error.status === 404 || error.status === 405) || !query.fallback) throw error;
        imageSearch = false;  // an older service: search by the hit's caption instead
      }
    }
    const request = { text: query.image ? query.fallback : query.text, n, offset };
    if (names.length) request.corpora = names;
    return getJSON("/v1/search", { method: "POST", json: request });
  }

  async function run() {
    if (!query) return;
    clearError();
    const n = Number(perPage.value);
    hitsBox.setAttribute("aria-busy", "true");
    $("timing").textContent = "searching…";
    $("query-line").textContent = query.text !== undefined ? `text: “${query.text}”` : `image: ${query.name}`;
    const started = performance.now();
    let hits;
    try {
      hits = await fetchHits(n);
    } catch (error) {
      hitsBox.setAttribute("aria-busy", "false");
      $("timing").textContent = "";
      showError(error);
      return;
    }
    const searched = performance.now() - started;
    render(hits);
    $("page-line").textContent = hits.length ? `hits ${offset + 1}–${offset + hits.length}` : "no hits";
    $("previous").disabled = offset === 0;
    $("next").disabled = hits.length < n;
    $("timing").textContent = `${hits.length} hits in ${searched.toFixed(0)} ms`;
    if (query.text !== undefined) {
      const params = new URLSearchParams({ q: query.text });
      if (offset) params.set("offset", offset);
      if (corpora.value.trim()) params.set("corpora", corpora.value.trim());
      history.replaceState(null, "", `?${params}`);
    }
    await Promise.all([...hitsBox.querySelectorAll(".hit")].map((card) => card.settled));
    hitsBox.setAttribute("aria-busy", "false");
    $("timing").textContent += ` · images in ${(performance.now() - started).toFixed(0)} ms`;
  }

  function searchText(value) {
    text.value = value;
    file.value = "";
    query = { text: value };
    offset = 0;
    run();
  }

  async function searchImage(blob, name, fallback) {
    text.value = "";
    query = { image: blob, name, fallback };
    offset = 0;
    await run();
  }

  function render(hits) {
    hitsBox.replaceChildren();
    if (!hits.length) {
      hitsBox.append(el("p", { class: "muted" }, "No hits: the store is empty, or no pair is in these corpora."));
      return;
    }
    for (const hit of hits) {
      const img = el("img", { alt: `image of ${hit.corpus}:${hit.key}`, width: 256, height: 256 });
      const picture = el("button", {
        type: "button", class: "thumb", title: "Search by this image",
        onclick: async () => {
          const found = await thumbnailBlob(hit.pair_id);
          if (found instanceof Blob) searchImage(found, `${hit.corpus}:${hit.key}`, hit.caption);
          else searchText(hit.caption);
        },
      }, img);
      const card = el("figure", { class: "hit", "data-pair": hit.pair_id },
        picture,
        el("figcaption", {},
          el("button", { type: "button", class: "caption", title: "Search by this caption",
            onclick: () => searchText(hit.caption) }, hit.caption),
          el("dl", { class: "facts" },
            el("dt", {}, "score"), el("dd", { class: "score" }, fixed(hit.score)),
            el("dt", {}, "corpus"), el("dd", {}, hit.corpus),
            el("dt", {}, "key"), el("dd", { class: "key" }, hit.key)),
          webUrl(hit.url) ? el("a", { href: hit.url, rel: "noopener noreferrer", target: "_blank" }, "source")
            : null));
      card.settled = showThumbnail(img, card, hit);
      hitsBox.append(card);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (file.files.length) {
      searchImage(file.files[0], file.files[0].name, null);
    } else if (text.value.trim()) {
      searchText(text.value.trim());
    } else {
      showError(new xmore.ApiError(0, "type a text or choose an image to search"));
    }
  });
  xmore.dropZone($("drop"), (list) => {
    if (list[0]) searchImage(list[0], list[0].name, null);
  });
  $("previous").addEventListener("click", () => { offset = Math.max(0, offset - Number(perPage.value)); run(); });
  $("next").addEventListener("click", () => { offset += Number(perPage.value); run(); });

  api("/v1/corpora").then((r) => r.json()).then((list) => {
    $("corpus-names").replaceChildren(...list.map((c) => el("option", { value: c.corpus || c.name || c })));
  }).catch(() => { /* suggestions only: the filter still takes typed names */ });

  const params = new URLSearchParams(location.search);
  if (params.get("corpora")) corpora.value = params.get("corpora");
  if (params.get("q")) {
    text.value = params.get("q");
    query = { text: params.get("q") };
    offset = Math.max(0, Number(params.get("offset")) || 0);
    await run();
  } else {
    text.focus();
  }
});
