// numcnn explore: pictures of arrays. Colour scales, images on canvases, the feature-map grids of the forward
// pass, and the hover read-out.
//
// The lesson: a convolution layer with C output channels turns one image into C new images, its feature maps.
// All maps of one layer share one colour scale (its min and max over all channels), so a bright map is a
// strongly responding filter, not just a map that was stretched to full contrast on its own.
"use strict";
window.NX = window.NX || {};

(function (NX) {
  // ---- colour scales -----------------------------------------------------------------------------------------

  /**
   * A colour scale for values in [min, max]. Signed layers (min < 0 < max) get a diverging scale centred on 0
   * (blue negative, white zero, red positive: the sign of a pre-activation matters); others a sequential one.
   */
  function scale(min, max) {
    if (!(isFinite(min) && isFinite(max))) { min = 0; max = 1; }
    const signed = min < 0 && max > 0;
    const m = Math.max(Math.abs(min), Math.abs(max)) || 1;
    return {
      min: min, max: max, signed: signed,
      rgb: signed ? function (v) { return diverging(v / m); }
        : function (v) { return sequential(max > min ? (v - min) / (max - min) : 0.5); },
      css: function (v) { const c = this.rgb(v); return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")"; },
      // the legend spans [-m, m] for a signed scale, [min, max] otherwise
      low: signed ? -m : min, high: signed ? m : max,
    };
  }

  function clamp01(t) { return t < 0 ? 0 : t > 1 ? 1 : t; }

  /** t in [-1, 1]: blue (-1) to white (0) to red (1). */
  function diverging(t) {
    t = Math.max(-1, Math.min(1, t));
    if (t < 0) {
      const a = -t;
      return [Math.round(255 - 196 * a), Math.round(255 - 143 * a), Math.round(255 - 45 * a)];
    }
    return [Math.round(255 - 40 * t), Math.round(255 - 190 * t), Math.round(255 - 200 * t)];
  }

  /** t in [0, 1]: dark blue-black (0) to yellow-white (1), an inferno-like ramp that stays readable in gray. */
  function sequential(t) {
    t = clamp01(t);
    const stops = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
    const f = t * (stops.length - 1), i = Math.min(Math.floor(f), stops.length - 2), u = f - i;
    return [0, 1, 2].map(function (k) { return Math.round(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * u); });
  }

  /** Gray for input images: 0 black, 1 white (clamped). */
  function gray(v) { const g = Math.round(clamp01(v) * 255); return [g, g, g]; }

  /** A legend: a gradient bar with the scale's low and high ends written under it. */
  function legend(sc) {
    const box = el("div", "legend");
    const bar = el("div", "legend-bar");
    const stops = [];
    for (let i = 0; i <= 10; i++) stops.push(sc.css(sc.low + (sc.high - sc.low) * i / 10));
    bar.style.background = "linear-gradient(to right," + stops.join(",") + ")";
    box.appendChild(bar);
    const ends = el("div", "legend-ends");
    ends.appendChild(el("span", "", fmt(sc.low)));
    if (sc.signed) ends.appendChild(el("span", "", "0"));
    ends.appendChild(el("span", "", fmt(sc.high)));
    box.appendChild(ends);
    return box;
  }

  // ---- drawing arrays on canvases ----------------------------------------------------------------------------

  /** A canvas of w x h pixels, pixel (y, x) coloured colour(value(y, x)); shown enlarged by CSS (pixelated). */
  function image(w, h, value, colour, cssWidth) {
    const cv = document.createElement("canvas");
    cv.width = w; cv.height = h;
    const ctx = cv.getContext("2d");
    const img = ctx.createImageData(w, h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const c = colour(value(y, x)), o = 4 * (y * w + x);
        img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    cv.className = "pix";
    if (cssWidth) { cv.style.width = cssWidth + "px"; cv.style.height = Math.round(cssWidth * h / w) + "px"; }
    return cv;
  }

  /** The input image (C, H, W) in [0, 1] as a gray (C = 1) or RGB (C = 3) canvas. */
  function inputImage(arr, cssWidth) {
    const [C, H, W] = arr.shape, d = arr.data, k = arr.data instanceof Uint8Array ? 1 / 255 : 1;
    const colour = C === 3
      ? function (o) { return [0, 1, 2].map(function (c) { return Math.round(clamp01(d[c * H * W + o] * k) * 255); }); }
      : function (o) { return gray(d[o] * k); };
    return image(W, H, function (y, x) { return y * W + x; }, colour, cssWidth);
  }

  /** Map a mouse event on an enlarged canvas to its array pixel (y, x). */
  function pixelAt(cv, ev, w, h) {
    const r = cv.getBoundingClientRect();
    const x = Math.min(w - 1, Math.max(0, Math.floor((ev.clientX - r.left) / r.width * w)));
    const y = Math.min(h - 1, Math.max(0, Math.floor((ev.clientY - r.top) / r.height * h)));
    return [y, x];
  }

  // ---- the forward pass, layer by layer ----------------------------------------------------------------------

  const MAX_MAPS = 64;   // maps drawn per layer (a wide ResNet layer has more); the rest on request

  /**
   * One layer's card: name, type, output shape, legend, and its output drawn as a grid of feature maps
   * (C, H, W), a strip of cells (N,) for Linear/Flatten outputs, or rows of strips for 2-D outputs.
   * `onPick(c, y, x)` is called when a pixel of an explainable layer is clicked; `reads`: the layer it reads.
   */
  function layerCard(layer, explainKind, onPick, reads) {
    const arr = NX.api.unpack(layer.data);
    const sc = scale(layer.min, layer.max);
    const card = el("div", "layer-card");
    card.dataset.layer = layer.name;
    const head = el("div", "layer-head");
    head.appendChild(el("span", "layer-name", layer.name));
    head.appendChild(el("span", "layer-type", layer.type));
    head.appendChild(el("span", "layer-shape", "(" + layer.shape.join(", ") + ")"));
    // where its input came from: the previous layer, or another one in a branching model (resnet, inception)
    if (reads) head.appendChild(el("span", "layer-reads", "\u2190 " + reads));
    if (explainKind) head.appendChild(el("span", "layer-explain", "click a pixel: " + explainKind + " explained"));
    card.appendChild(head);
    card.appendChild(legend(sc));
    const grid = el("div", "maps");
    card.appendChild(grid);
    const shape = arr.shape;
    if (shape.length === 3) mapsGrid(grid, layer, arr, sc, explainKind ? onPick : null);
    else if (shape.length === 1) grid.appendChild(strip(layer.name, arr.data, 0, shape[0], sc, ""));
    else if (shape.length === 2) {
      for (let r = 0; r < shape[0]; r++) {
        grid.appendChild(strip(layer.name, arr.data, r * shape[1], shape[1], sc, "row " + r + " "));
      }
    } else grid.appendChild(el("div", "note", "an output of shape (" + shape.join(", ") + ") is not drawn"));
    return card;
  }

  /** The C maps of a (C, H, W) output, each a small canvas; hover reads a value, click explains it. */
  function mapsGrid(grid, layer, arr, sc, onPick) {
    const [C, H, W] = arr.shape, d = arr.data;
    const size = Math.max(42, Math.min(84, 3 * W));
    function draw(c) {
      const cell = el("div", "map");
      const cv = image(W, H, function (y, x) { return d[(c * H + y) * W + x]; }, sc.rgb, size);
      cv.dataset.channel = c;
      if (onPick) cv.classList.add("pickable");
      cv.addEventListener("mousemove", function (ev) {
        const [y, x] = pixelAt(cv, ev, W, H);
        tip(ev, layer.name + " [" + c + ", " + y + ", " + x + "] = " + fmt(d[(c * H + y) * W + x]));
      });
      cv.addEventListener("mouseleave", hideTip);
      if (onPick) cv.addEventListener("click", function (ev) {
        const [y, x] = pixelAt(cv, ev, W, H);
        mark(cell, cv, y, x, W, H);
        onPick(c, y, x);
      });
      cell.appendChild(cv);
      cell.appendChild(el("div", "map-label", String(c)));
      grid.appendChild(cell);
    }
    for (let c = 0; c < Math.min(C, MAX_MAPS); c++) draw(c);
    if (C > MAX_MAPS) {
      const more = el("button", "more", "show all " + C + " maps");
      more.addEventListener("click", function () { more.remove(); for (let c = MAX_MAPS; c < C; c++) draw(c); });
      grid.appendChild(more);
    }
  }

  /** A 1-D output as a strip of cells, wrapping every 64 (hover for index and value). */
  function strip(name, d, start, n, sc, prefix) {
    const per = Math.min(n, 64), rows = Math.ceil(n / per);
    const cv = image(per, rows, function (y, x) { const i = y * per + x; return i < n ? d[start + i] : NaN; },
      function (v) { return isNaN(v) ? [238, 238, 238] : sc.rgb(v); });
    cv.classList.add("strip");
    const cell = n <= 32 ? 20 : 10;   // a short vector (the class scores) gets bigger cells
    cv.style.width = per * cell + "px"; cv.style.height = rows * cell + "px";
    cv.addEventListener("mousemove", function (ev) {
      const [y, x] = pixelAt(cv, ev, per, rows), i = y * per + x;
      if (i < n) tip(ev, name + " " + prefix + "[" + i + "] = " + fmt(d[start + i]));
    });
    cv.addEventListener("mouseleave", hideTip);
    return cv;
  }

  /** Outline the clicked pixel (only one marked pixel on the page at a time). */
  function mark(cell, cv, y, x, W, H) {
    document.querySelectorAll(".pixel-mark").forEach(function (m) { m.remove(); });
    const m = el("div", "pixel-mark");
    const w = cv.offsetWidth / W, h = cv.offsetHeight / H;
    m.style.left = (cv.offsetLeft + x * w) + "px"; m.style.top = (cv.offsetTop + y * h) + "px";
    m.style.width = w + "px"; m.style.height = h + "px";
    cell.appendChild(m);
  }

  /** Outline pixel (y, x) of channel c's map of `layer`, if it is on the page (after a new input, say). */
  function markPixel(layer, c, y, x) {
    const cv = document.querySelector('.layer-card[data-layer="' + CSS.escape(layer) + '"] ' +
      'canvas[data-channel="' + c + '"]');
    if (cv) mark(cv.parentNode, cv, y, x, cv.width, cv.height);
  }

  // ---- small helpers used by every file ----------------------------------------------------------------------

  /** An element with a class and text. */
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** A number with 4 significant digits for labels (null/NaN shown as "n/a"). */
  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1e4 || a < 1e-3 ? v.toExponential(3) : String(Number(v.toPrecision(4)));
  }

  let tipEl = null;
  function tip(ev, text) {
    if (!tipEl) { tipEl = el("div", "tooltip"); tipEl.id = "tooltip"; document.body.appendChild(tipEl); }
    tipEl.textContent = text;
    tipEl.style.display = "block";
    tipEl.style.left = (ev.pageX + 12) + "px"; tipEl.style.top = (ev.pageY + 12) + "px";
  }
  function hideTip() { if (tipEl) tipEl.style.display = "none"; }

  NX.maps = {
    scale: scale, legend: legend, image: image, inputImage: inputImage, layerCard: layerCard, pixelAt: pixelAt,
    gray: gray, sequential: sequential, diverging: diverging, tip: tip, hideTip: hideTip, markPixel: markPixel,
  };
  NX.el = el;
  NX.fmt = fmt;
})(window.NX);
