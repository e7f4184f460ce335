// What every page shares: the API key, calls to the /v1 API, the one-line error, elements, thumbnails.
// The page is one more API client: it decides nothing the API decides (who may read or reset what).
"use strict";

const xmore = (() => {
  const root = document.body.dataset.root || "";
  const KEY = "xmore-api-key";

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const storedKey = () => sessionStorage.getItem(KEY);

  // One readable line for any failed response: the API's {"error": "..."}, else the status text; never a body.
  async function errorLine(response) {
    let message = "";
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") message = body.error;
    } catch (_) { /* not JSON: a proxy's page, say */ }
    message = (message.split("\n")[0] || response.statusText || "request failed").trim();
    return `${message} (HTTP ${response.status})`;
  }

  // fetch() against the API with the key; the Response when ok, else ApiError carrying one line.
  async function api(path, { method = "GET", json, form, query } = {}) {
    const headers = {};
    const key = storedKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    const url = root + path + (query ? `?${new URLSearchParams(query)}` : "");
    let response;
    try {
      response = await fetch(url, { method, headers, body });
    } catch (error) {
      throw new ApiError(0, `the service did not answer (${error.message})`);
    }
    if (!response.ok) throw new ApiError(response.status, await errorLine(response));
    return response;
  }

  const getJSON = async (path, options) => (await api(path, options)).json();

  // A stream name may hold slashes; each piece is escaped, the slashes kept (the API takes a path).
  const streamPath = (name) => name.split("/").map(encodeURIComponent).join("/");

  function showError(error) {
    const line = document.getElementById("error");
    const text = error instanceof ApiError ? error.message
      : `unexpected error in the page: ${String((error && error.message) || error).split("\n")[0]}`;
    line.textContent = text;
    line.hidden = false;
  }

  function clearError() {
    const line = document.getElementById("error");
    line.textContent = "";
    line.hidden = true;
  }

  // el("a", {href: "/x", class: "c"}, "text", child): text is always text, never parsed as HTML.
  function el(tag, attributes = {}, ...children) {
    const node = tag.startsWith("svg:")
      ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
      : document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A url from a payload, only when it is http(s): never a `javascript:` link.
  const webUrl = (url) => (typeof url === "string" && /^https?:\/\//i.test(url) ? url : null);

  const fixed = (value, digits = 3) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

  // Thumbnails: fetched with the key (an <img src> could not send it), kept as blobs for the page's life.
  const thumbnails = new Map();

  function thumbnailBlob(pairId, size = 256) {
    const id = `${pairId}@${size}`;
    if (!thumbnails.has(id)) {
      thumbnails.set(id, api(`/v1/pairs/${encodeURIComponent(pairId)}/image`, { query: { size } })
        .then((response) => response.blob())
        .catch((error) => ({ missing: error.message })));
    }
    return thumbnails.get(id);
  }

  // Fills `img` with the pair's thumbnail; a pair kept only as a url is shown from there when the browser
  // can reach it. Sets data-thumb on `holder`: "loaded", "url" or "missing" (with the API's reason as title);
  // resolves once it is set.
  async function showThumbnail(img, holder, hit, size = 256) {
    const found = await thumbnailBlob(hit.pair_id, size);
    if (found instanceof Blob) {
      img.src = URL.createObjectURL(found);
      await img.decode().catch(() => {});
      holder.dataset.thumb = "loaded";
      return;
    }
    const missing = () => {
      img.removeAttribute("src");
      holder.dataset.thumb = "missing";
      holder.title = found.missing;
    };
    if (!webUrl(hit.url)) {
      missing();
      return;
    }
    await new Promise((settle) => {
      img.addEventListener("load", () => { holder.dataset.thumb = "url"; settle(); }, { once: true });
      img.addEventListener("error", () => { missing(); settle(); }, { once: true });
      img.src = hit.url;
    });
  }

  function askForKey(reason) {
    const form = document.getElementById("key-form");
    document.getElementById("key-reason").textContent = reason;
    form.hidden = false;
    document.getElementById("main").hidden = true;
    document.getElementById("api-key").focus();
  }

  function showCaller(status) {
    const who = document.getElementById("who");
    const forget = document.getElementById("forget-key");
    if (status.keys_required) {
      who.textContent = `team ${status.team} · ${status.role} key`;
      forget.hidden = false;
    } else {
      who.textContent = "open service: no key needed";
      forget.hidden = true;
    }
  }

  // Runs `init(status)` once the API accepts this tab's key (or needs none); asks for a key on 401.
  // Call it when the document is parsed (scripts are deferred).
  function start(init) {
    const form = document.getElementById("key-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, document.getElementById("api-key").value.trim());
      location.reload();  // the page starts over with the key: nothing of the refused attempt lingers
    });
    document.getElementById("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      document.getElementById("who").textContent = "";
      document.getElementById("forget-key").hidden = true;
      askForKey("Key forgotten. Enter an API key to go on.");
    });

    async function begin() {
      clearError();
      let status;
      try {
        status = await getJSON("/v1/status");
      } catch (error) {
        if (error.status === 401) {
          askForKey(storedKey() ? `This key was refused: ${error.message}` : "This service needs an API key.");
        } else {
          showError(error);
        }
        return;
      }
      form.hidden = true;
      document.getElementById("main").hidden = false;
      showCaller(status);
      try {
        await init(status);
      } catch (error) {
        showError(error);
      }
    }
    begin();
  }

  // A drop zone: highlighted while files are dragged over it; onFiles gets the dropped FileList.
  function dropZone(zone, onFiles) {
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      onFiles(event.dataTransfer.files);
    });
  }

  return { ApiError, api, getJSON, streamPath, showError, clearError, el, fixed, webUrl, thumbnailBlob,
    showThumbnail, start, root, dropZone };
})();
