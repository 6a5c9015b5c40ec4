// numcnn explore: the prediction (bars, saliency, Grad-CAM) and the training (curves, confusion matrix).
"use strict";
window.NX = window.NX || {};

(function (NX) {
  const el = function (t, c, x) { return NX.el(t, c, x); };
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- the prediction -------------------------------------------------------------------------------------

  /**
   * Class probabilities (the softmax of the last layer's scores) as bars. The predicted class is highlighted,
   * the true label (for a test image) marked; clicking a class picks it for the saliency maps.
   */
  function bars(box, probs, classes, predicted, label, picked, onPick) {
    box.innerHTML = "";
    probs.forEach(function (p, k) {
      const r = el("div", "bar-row" + (k === predicted ? " predicted" : "") + (k === picked ? " picked" : ""));
      r.dataset.class = k;
      r.title = "click: saliency and Grad-CAM for this class";
      const name = classes[k] !== undefined ? classes[k] : String(k);
      r.appendChild(el("span", "bar-label", name + (k === label ? " \u2605" : "")));   // the star: the true class
      const track = el("span", "bar-track");
      const fill = el("span", "bar-fill");
      fill.style.width = (100 * p).toFixed(1) + "%";
      track.appendChild(fill);
      r.appendChild(track);
      r.appendChild(el("span", "bar-value", (100 * p).toFixed(1) + "%"));
      r.addEventListener("click", function () { onPick(k); });
      box.appendChild(r);
    });
  }

  /**
   * The saliency map (|d score_k / d input|: which pixels would change class k's score most) and Grad-CAM (the
   * last convolution's maps weighted by the mean gradient of class k's score, ReLU'd, upsampled: where the
   * network looked), each laid over the input image.
   */
  function heatmaps(box, inputArr, answer, classes) {
    box.innerHTML = "";
    const shown = [["input", null]];
    if (answer.saliency) shown.push(["saliency: |\u2202 score / \u2202 input|", NX.api.unpack(answer.saliency)]);
    if (answer.gradcam) shown.push(["Grad-CAM on " + answer.gradcam_layer, NX.api.unpack(answer.gradcam)]);
    else shown.push(["Grad-CAM: this model has no convolution", null]);
    const [C, H, W] = inputArr.shape, k = inputArr.data instanceof Uint8Array ? 1 / 255 : 1;
    shown.forEach(function (s, i) {
      const fig = el("figure", "heat");
      let cv;
      if (i === 0) cv = NX.maps.inputImage(inputArr, 140);
      else if (s[1]) {
        const m = s[1], mh = m.shape[0], mw = m.shape[1];
        // heat in the red/yellow ramp, blended over the dimmed gray input
        cv = NX.maps.image(mw, mh, function (y, x) {
          const iy = Math.floor(y * H / mh), ix = Math.floor(x * W / mw);
          let g = 0;
          for (let c = 0; c < C; c++) g += inputArr.data[(c * H + iy) * W + ix] * k / C;
          return [m.data[y * mw + x], g];
        }, function (v) {
          const h = NX.maps.sequential(v[0]), t = Math.min(1, v[0] * 1.5);
          return [0, 1, 2].map(function (j) { return Math.round(h[j] * t + v[1] * 120 * (1 - t)); });
        }, 140);
      } else cv = el("div", "empty-heat", "n/a");
      if (i > 0) cv.id = i === 1 ? "saliency-map" : "gradcam-map";
      fig.appendChild(cv);
      const forClass = i > 0 ? " (class " + (classes[answer.class] || answer.class) + ")" : "";
      fig.appendChild(el("figcaption", "", s[0] + forClass));
      box.appendChild(fig);
    });
  }

  // ---- the training ----------------------------------------------------------------------------------------

  /** Line charts of the metrics.json records: loss, accuracy and learning rate against the epoch. */
  function curves(box, epochs) {
    box.innerHTML = "";
    if (!epochs || !epochs.length) { box.appendChild(el("p", "note", "this run has no metrics.json records")); return; }
    const charts = [
      ["loss", [["train_loss", "train"], ["val_loss", "validation"]]],
      ["accuracy", [["train_accuracy", "train"], ["val_accuracy", "validation"]]],
      ["learning rate", [["lr", "lr"]]],
    ];
    charts.forEach(function (c) {
      const series = c[1].filter(function (s) {
        return epochs.some(function (e) { return typeof e[s[0]] === "number"; });
      });
      if (series.length) box.appendChild(lineChart(c[0], epochs, series));
    });
  }

  function lineChart(title, epochs, series) {
    const W = 300, H = 180, L = 52, R = 10, T = 24, B = 30;
    const xs = epochs.map(function (e, i) { return typeof e.epoch === "number" ? e.epoch : i + 1; });
    let lo = Infinity, hi = -Infinity;
    series.forEach(function (s) {
      epochs.forEach(function (e) {
        const v = e[s[0]];
        if (typeof v === "number") { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      });
    });
    if (lo === hi) { lo -= 1e-9 + Math.abs(lo) * 0.1; hi += 1e-9 + Math.abs(hi) * 0.1; }
    const x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    const px = function (x) { return L + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (W - L - R); };
    const py = function (y) { return T + (1 - (y - lo) / (hi - lo)) * (H - T - B); };
    const s = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-label": title });
    s.appendChild(svg("text", { x: L, y: 14, class: "chart-title" }, title));
    for (let i = 0; i <= 4; i++) {          // y grid and labels
      const v = lo + (hi - lo) * i / 4;
      s.appendChild(svg("line", { x1: L, x2: W - R, y1: py(v), y2: py(v), class: "grid" }));
      s.appendChild(svg("text", { x: L - 4, y: py(v) + 3, class: "tick", "text-anchor": "end" }, NX.fmt(v)));
    }
    xs.forEach(function (x, i) {            // epoch ticks (at most ~8 labels)
      if (xs.length > 8 && i % Math.ceil(xs.length / 8) !== 0) return;
      s.appendChild(svg("text", { x: px(x), y: H - B + 14, class: "tick", "text-anchor": "middle" }, String(x)));
    });
    s.appendChild(svg("text", { x: (L + W - R) / 2, y: H - 4, class: "tick", "text-anchor": "middle" }, "epoch"));
    series.forEach(function (se, j) {
      const pts = [];
      epochs.forEach(function (e, i) { if (typeof e[se[0]] === "number") pts.push(px(xs[i]) + "," + py(e[se[0]])); });
      s.appendChild(svg("polyline", { points: pts.join(" "), class: "series s" + j }));
      pts.forEach(function (p) {
        const q = p.split(",");
        s.appendChild(svg("circle", { cx: q[0], cy: q[1], r: 2.5, class: "dot s" + j }));
      });
      // the key, in the title line: one coloured name per series, right-aligned
      const keyX = W - R - 70 * (series.length - 1 - j);
      s.appendChild(svg("text", { x: keyX, y: 14, class: "key s" + j, "text-anchor": "end" }, "\u2014 " + se[1]));
    });
    return s;
  }

  /**
   * The confusion matrix: row = true class, column = predicted class, count of test images. The diagonal holds
   * the correct ones; every other cell is one kind of mistake. Clicking a cell browses its images.
   */
  function confusion(box, conf, onCell) {
    box.innerHTML = "";
    if (!conf) { box.appendChild(el("p", "note", "no confusion matrix (the test set was not found)")); return; }
    const m = conf.matrix, n = m.length, classes = conf.classes;
    let max = 1;
    m.forEach(function (r, i) { r.forEach(function (v, j) { if (i !== j) max = Math.max(max, v); }); });
    const t = el("table", "confusion");
    t.id = "confusion";
    const head = el("tr");
    head.appendChild(el("th", "corner", "true \\ predicted"));
    for (let j = 0; j < n; j++) { const th = el("th", "col", String(j)); th.title = classes[j]; head.appendChild(th); }
    t.appendChild(head);
    m.forEach(function (r, i) {
      const tr = el("tr");
      tr.appendChild(el("th", "rowh", i + " " + classes[i]));
      r.forEach(function (v, j) {
        const td = el("td", i === j ? "diag" : "off", String(v));
        td.dataset.true = i; td.dataset.pred = j;
        // mistakes shaded by count relative to the largest mistake; the diagonal in green
        const rowTotal = r.reduce(function (a, b) { return a + b; }, 0);
        td.style.background = i === j ? "rgba(46,160,67," + (0.15 + 0.5 * v / Math.max(1, rowTotal)) + ")"
          : v ? "rgba(215,58,73," + (0.08 + 0.8 * v / max) + ")" : "";
        td.title = v + " test images of " + classes[i] + " predicted as " + classes[j];
        if (v) td.addEventListener("click", function () { onCell(i, j); });
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    box.appendChild(t);
    if (typeof conf.accuracy === "number") {
      box.appendChild(el("p", "note", "test accuracy " + (100 * conf.accuracy).toFixed(2) + "%"));
    }
  }

  NX.charts = { bars: bars, heatmaps: heatmaps, curves: curves, confusion: confusion };
})(window.NX);
