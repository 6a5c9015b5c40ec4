// numcnn explore: the page's wiring. Loads the run, then for every new input runs the forward pass and shows
// the layers, the prediction and the saliency maps; a click on a feature-map pixel asks for its explanation.
"use strict";
window.NX = window.NX || {};

(function (NX) {
  const el = function (t, c, x) { return NX.el(t, c, x); };
  const $ = function (id) { return document.getElementById(id); };

  const state = {
    run: null,           // /api/run's answer
    layers: {},          // layer name -> its /api/run entry (explain: "conv" | "pool" | "batchnorm" | null, reads)
    input: null,         // the current input spec ({test: i} or {pixels: packed})
    forward: null,       // /api/forward's answer for it
    picked: null,        // the class the saliency maps are for (null: the predicted class)
    pixel: null,         // the last explained pixel [layer, c, y, x], explained again for a new input
    seq: 0,              // a new input makes older answers stale
  };

  /** Show an error in `box` (a section) and in the banner; the page never goes blank. */
  function showError(e, box) {
    const msg = e && e.message ? e.message : String(e);
    const div = el("div", "error", msg);
    if (box) { box.innerHTML = ""; box.appendChild(div); }
    const banner = $("error-banner");
    banner.textContent = msg;
    banner.hidden = false;
    if (window.console) console.warn("numcnn explore:", msg);
  }
  function clearBanner() { $("error-banner").hidden = true; }

  function status(text) { $("status").textContent = text; }

  // ---- a new input -------------------------------------------------------------------------------------------

  /** Make `spec` the input: forward pass, prediction, layers, saliency, and the last explained pixel again. */
  async function setInput(spec, source) {
    const seq = ++state.seq;
    state.input = spec; state.picked = null;
    status("forward pass for " + source + " ...");
    document.body.dataset.busy = "1";
    let fw;
    try {
      fw = await NX.api.forward(spec);
    } catch (e) {
      if (seq === state.seq) {
        // nothing stale stays on the page: the old input's prediction, maps and explanation go
        state.forward = null;
        $("predicted").textContent = "";
        $("input-source").textContent = source + ": no forward pass";
        ["heatmaps", "layers", "explain-body"].forEach(function (id) { $(id).innerHTML = ""; });
        showError(e, $("bars"));
        status("");
        delete document.body.dataset.busy;
      }
      return;
    }
    if (seq !== state.seq) return;
    clearBanner();
    state.forward = fw;
    $("input-source").textContent = source + (fw.label !== null && fw.label !== undefined
      ? " (true class: " + state.run.classes[fw.label] + ")" : "");
    const pred = $("prediction");
    pred.dataset.source = source;
    pred.dataset.seq = String(seq);
    renderBars();
    renderLayers();
    status("");
    delete document.body.dataset.busy;
    await Promise.all([saliency(seq), state.pixel ? explain.apply(null, state.pixel) : null]);
  }

  function renderBars() {
    const fw = state.forward;
    const k = state.picked === null ? fw.predicted : state.picked;
    NX.charts.bars($("bars"), fw.probabilities, state.run.classes, fw.predicted, fw.label, k, function (c) {
      state.picked = c; renderBars(); saliency(state.seq);
    });
    $("predicted").textContent = "predicted: " + state.run.classes[fw.predicted] + " (" +
      (100 * fw.probabilities[fw.predicted]).toFixed(1) + "%)";
  }

  async function saliency(seq) {
    const k = state.picked === null ? state.forward.predicted : state.picked;
    const box = $("heatmaps");
    try {
      const ans = await NX.api.saliency(state.input, k);
      if (seq === state.seq) NX.charts.heatmaps(box, NX.api.unpack(state.forward.input), ans, state.run.classes);
    } catch (e) {
      if (seq === state.seq) showError(e, box);
    }
  }

  /** The layer cards of the forward pass (input first, as layer 0). */
  function renderLayers() {
    const box = $("layers");
    box.innerHTML = "";
    const inp = NX.api.unpack(state.forward.input);
    const card = el("div", "layer-card");
    const head = el("div", "layer-head");
    head.appendChild(el("span", "layer-name", "input"));
    head.appendChild(el("span", "layer-shape", "(" + inp.shape.join(", ") + ")"));
    head.appendChild(el("span", "layer-type", "pixels in [0, 1]; the model sees (pixel \u2212 mean) / std"));
    card.appendChild(head);
    card.appendChild(NX.maps.inputImage(inp, 84));
    box.appendChild(card);
    state.forward.layers.forEach(function (layer) {
      const info = state.layers[layer.name] || {};
      const pick = function (c, y, x) { explain(layer.name, c, y, x); };
      box.appendChild(NX.maps.layerCard(layer, info.explain || null, pick, info.reads));
    });
    if (state.pixel) NX.maps.markPixel.apply(null, state.pixel);   // the explained pixel, on the new maps
  }

  /** Ask for (or, in an export, compute) the explanation of one output pixel and show it. */
  async function explain(layer, c, y, x) {
    state.pixel = [layer, c, y, x];
    const seq = state.seq;
    const body = $("explain-body");
    $("explain").dataset.state = "loading";
    try {
      const a = await NX.api.explain(state.input, layer, c, y, x);
      if (seq !== state.seq) return;
      NX.explain.render(a);
      // which pixel is shown, for the reader of the page's state (the browser test)
      Object.assign($("explain").dataset, { layer: layer, channel: c, y: y, x: x, state: "done" });
    } catch (e) {
      showError(e, body);
      $("explain").dataset.state = "error";
    }
  }

  // ---- start -------------------------------------------------------------------------------------------------

  function renderRun(run) {
    document.body.dataset.mode = NX.api.mode;
    $("run-name").textContent = run.run;
    $("run-info").textContent = run.model + " \u00b7 " + run.classes.length + " classes \u00b7 input (" +
      run.image_shape.join(", ") + ") \u00b7 weights: " + run.source;
    run.layers.forEach(function (l) { state.layers[l.name] = l; });
    const sel = $("class-select");
    run.classes.forEach(function (name, k) {
      const o = el("option", "", k + ": " + name);
      o.value = k;
      sel.appendChild(o);
    });
  }

  /** Static mode (an export): drawing and uploads need the live server. */
  function staticMode() {
    $("static-note").hidden = false;
    $("draw").classList.add("disabled");
    $("draw-clear").disabled = true;
    ["upload-file", "upload-invert", "upload-fit"].forEach(function (id) { $(id).disabled = true; });
  }

  async function start() {
    let run;
    try {
      run = await NX.api.start();
    } catch (e) {
      showError(new Error("cannot load the run: " + e.message), null);
      status("");
      return;
    }
    state.run = run;
    renderRun(run);
    const onError = showError;
    const gallery = NX.input.gallery(run, setInput, onError);
    if (NX.api.mode === "static") staticMode();
    else {
      NX.input.drawing(run.image_shape, function (px) {
        setInput({ pixels: NX.api.packFloat32(px, run.image_shape) }, "drawing");
      });
      NX.input.upload(setInput, onError);
    }
    $("class-select").addEventListener("change", function (ev) {
      if (ev.target.value !== "") gallery.show({ label: ev.target.value }, 0, "class " + run.classes[ev.target.value]);
    });
    $("show-misclassified").addEventListener("click", function () {
      gallery.show({ misclassified: 1 }, 0, "misclassified test images");
    });
    if (run.test_images === 0) {
      $("pick-note").textContent = "no test images: " + (run.test_error || "the dataset was not found");
      $("pick-controls").hidden = true;
    }
    NX.api.metrics().then(function (m) {
      NX.charts.curves($("curves"), m.epochs);
      NX.charts.confusion($("confusion-box"), m.confusion, function (i, j) {
        gallery.show({ true: i, pred: j }, 0, run.classes[i] + " predicted as " + run.classes[j]);
        $("input").scrollIntoView({ behavior: "smooth" });
      });
    }).catch(function (e) { showError(e, $("curves")); });
    // a first input so that the page is never empty: the first test image (or the export's first one)
    if (NX.api.mode === "static") {
      const ex = await NX.api.examples({}, 0, 1).catch(function (e) { showError(e, $("bars")); return null; });
      if (ex && ex.items.length) setInput({ test: ex.items[0].index }, "test image " + ex.items[0].index);
      gallery.show({}, 0, "exported test images");
    } else if (run.test_images > 0) {
      setInput({ test: 0 }, "test image 0");
    }
  }

  NX.app = { state: state, setInput: setInput, explain: explain };
  document.addEventListener("DOMContentLoaded", start);
})(window.NX);
