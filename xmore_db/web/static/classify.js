// The classify page: POST /v1/classify, then per image why it got its label: the top 5 of the image's own
// guess (p_I), of the retrieved captions (p_T) and of the ensemble, the raw and adjusted confidences, the
// captions retrieved, and with a true label the Table-8 case (whether argmax p_I and argmax p_T are right).
"use strict";

xmore.start(async (status) => {
  const { api, getJSON, el, fixed, showError, clearError, showThumbnail } = xmore;
  const $ = (id) => document.getElementById(id);
  const CASES = JSON.parse($("main").dataset.cases); // both right, image right text wrong, text right image wrong, both wrong
  const TOP = 5;
  const form = $("classify-form");
  const files = $("images");
  const labelSet = $("label-set");
  let dropped = null; // files dropped on the form, used instead of the file input's

  if (Array.isArray(status.methods) && status.methods.length) { // a service that says which methods it serves
    const method = $("method");
    const names = status.methods.map((m) => (typeof m === "string" ? m : m.name));
    method.replaceChildren(...names.map((name) => el("option", { value: name, selected: name === "xmore" }, name)));
  }

  api("/v1/labelsets").then((r) => r.json()).then((sets) => {
    if (!sets.length) {
      $("label-set-note").textContent = "Your team has no saved label sets yet.";
      return;
    }
    labelSet.replaceChildren(...sets.map((s) => el("option", { value: s.name },
      `${s.name} (${(s.labels || []).length} labels)`)));
    labelSet.disabled = !$("labels-saved").checked;
  }).catch((error) => {
    $("labels-saved").disabled = true;
    $("label-set-note").textContent = `No saved label sets: ${error.message}`;
  });
  for (const radio of document.querySelectorAll("input[name=labels-from]")) {
    radio.addEventListener("change", () => {
      const saved = $("labels-saved").checked;
      labelSet.disabled = !saved || !labelSet.options.length;
      $("labels").disabled = saved;
    });
  }

  xmore.dropZone($("drop"), (list) => {
    dropped = [...list];
    $("summary").textContent = `${dropped.length} image(s) dropped: press Classify`;
  });
  files.addEventListener("change", () => { dropped = null; });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const chosen = dropped || [...files.files];
    if (!chosen.length) {
      showError(new xmore.ApiError(0, "choose one or more images to classify"));
      return;
    }
    const body = new FormData();
    for (const file of chosen) body.append("images", file, file.name);
    if ($("labels-saved").checked) body.append("label_set", labelSet.value);
    else body.append("labels", $("labels").value);
    body.append("stream", $("stream").value);
    body.append("method", $("method").value);
    if ($("corpora").value.trim()) body.append("corpora", $("corpora").value.trim());
    const results = $("results");
    results.setAttribute("aria-busy", "true");
    $("classify-button").disabled = true;
    $("summary").textContent = `classifying ${chosen.length} image(s)…`;
    const started = performance.now();
    try {
      const answer = await getJSON("/v1/classify", { method: "POST", form: body });
      $("summary").textContent = `${answer.length} image(s) classified into stream ${answer[0].stream} in `
        + `${(performance.now() - started).toFixed(0)} ms`;
      results.replaceChildren(...answer.map((result, i) => card(result, chosen[i])));
    } catch (error) {
      $("summary").textContent = "";
      showError(error);
    } finally {
      results.setAttribute("aria-busy", "false");
      $("classify-button").disabled = false;
    }
  });

  const argmax = (values) => values.reduce((best, v, i) => (v > values[best] ? i : best), 0);

  function bars(title, labels, values, prediction) {
    const box = el("section", { class: "bars" }, el("h3", {}, title));
    if (!values) {
      box.append(el("p", { class: "muted" }, "no captions retrieved"));
      return box;
    }
    const order = values.map((v, i) => i).sort((a, b) => values[b] - values[a]).slice(0, TOP);
    const list = el("ol", { class: "bar-list" });
    for (const i of order) {
      const fill = el("span", { class: "fill" });
      fill.style.width = `${Math.max(0, Math.min(1, values[i])) * 100}%`;
      list.append(el("li", { class: labels[i] === prediction ? "bar-row predicted" : "bar-row" },
        el("span", { class: "bar-label" }, labels[i]),
        el("span", { class: "bar", "aria-hidden": "true" }, fill),
        el("span", { class: "bar-value" }, fixed(values[i]))));
    }
    box.append(list);
    return box;
  }

  function caseOf(result, truth) {
    if (!result.p_text) return "no captions: in no case";
    const image = argmax(result.p_image) === truth;
    const text = argmax(result.p_text) === truth;
    return image && text ? CASES[0] : image ? CASES[1] : text ? CASES[2] : CASES[3];
  }

  function card(result, file) {
    const truth = el("select", { id: `truth-${result.seq}`, class: "truth" },
      el("option", { value: "" }, "(not given)"),
      result.labels.map((label, i) => el("option", { value: i }, label)));
    const verdict = el("p", { class: "case", "aria-live": "polite" });
    truth.addEventListener("change", () => {
      if (truth.value === "") {
        verdict.textContent = "";
        return;
      }
      const i = Number(truth.value);
      const right = result.labels[i] === result.prediction ? "right" : "wrong";
      verdict.textContent = `Table-8 case: ${caseOf(result, i)} · the final label is ${right}`;
    });
    const captions = el("ol", { class: "captions" });
    for (const hit of result.captions || []) {
      const img = el("img", { alt: "", width: 64, height: 64 });
      const item = el("li", {}, img,
        el("span", { class: "caption-text" }, hit.caption),
        el("span", { class: "muted" }, `${fixed(hit.score)} · ${hit.corpus}:${hit.key}`));
      showThumbnail(img, item, hit, 128);
      captions.append(item);
    }
    const preview = file ? el("img", { class: "preview", alt: `uploaded ${result.query}`,
      src: URL.createObjectURL(file) }) : null;
    return el("article", { class: "result panel", "data-seq": result.seq },
      el("header", { class: "result-head" }, preview,
        el("div", {},
          el("h2", {}, result.query),
          el("p", { class: "prediction" }, "Label: ", el("strong", {}, result.prediction)),
          el("p", { class: "muted" }, `seq ${result.seq} in stream ${result.stream} · ${result.method}`
            + (result.normalize ? ` · ${result.normalize} normalisation` : "")))),
      el("div", { class: "bars3" },
        bars("Image alone (p_I)", result.labels, result.p_image, result.prediction),
        bars("Captions (p_T)", result.labels, result.p_text, result.prediction),
        bars("Ensemble", result.labels, result.probabilities, result.prediction)),
      el("table", { class: "confidences" },
        el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", { scope: "col" }, "image"),
          el("th", { scope: "col" }, "captions"))),
        el("tbody", {},
          el("tr", {}, el("th", { scope: "row" }, "raw confidence c"), el("td", {}, fixed(result.c_image)),
            el("td", {}, fixed(result.c_text))),
          el("tr", {}, el("th", { scope: "row" }, "adjusted ĉ (weight)"), el("td", {}, fixed(result.w_image)),
            el("td", {}, fixed(result.w_text))))),
      el("div", { class: "field inline" }, el("label", { for: truth.id }, "True label (optional)"), truth),
      verdict,
      el("h3", {}, `Retrieved captions (${(result.captions || []).length})`),
      result.no_captions ? el("p", { class: "muted" }, "No captions were retrieved for this image.") : captions);
  }
});
