// numcnn explore: one output pixel explained (section 3 of the page).
//
// The lesson: a convolution's output pixel is nothing but a sum of products. Its kernel (C_in x R x S weights)
// is laid over the input patch under that pixel (all C_in input channels, zeros where the patch hangs over the
// padding), each pair is multiplied, everything is added up, and the bias is added:
//     out[c, y, x] = bias[c] + sum_ci sum_r sum_s input[ci, y*stride - pad + r, x*stride - pad + s] * w[c, ci, r, s]
// The server (or, in an export, this page) computes that sum in float64 with the textbook loops and puts it next
// to the float32 value numcnn's fast kernel produced in the real forward pass: they agree up to float32 rounding.
// Elements with ids (#explain-sum, #explain-result, #explain-activation, ...) are read by the browser test.
"use strict";
window.NX = window.NX || {};

(function (NX) {
  const el = function (t, c, x) { return NX.el(t, c, x); };

  /** A float shown with 9 significant digits; the exact value is kept in data-value. */
  function exact(id, v) {
    const missing = v === null || v === undefined;
    const s = el("span", "num", missing ? "n/a" : Number(v).toPrecision(9).replace(/\.?0+(e|$)/, "$1"));
    s.id = id;
    s.dataset.value = missing ? "" : String(v);
    return s;
  }

  /** A row "label: value (note)" of the result table. */
  function row(table, label, id, v, note) {
    const tr = el("tr");
    tr.appendChild(el("th", "", label));
    const td = el("td");
    td.appendChild(exact(id, v));
    tr.appendChild(td);
    tr.appendChild(el("td", "note", note || ""));
    table.appendChild(tr);
  }

  /** A grid of numbers (2-D list) as a table, cells coloured on `sc`; `mark` = [r, s] gets the winner style. */
  function numberGrid(title, grid, sc, mark) {
    const box = el("div", "grid-box");
    box.appendChild(el("div", "grid-title", title));
    const t = el("table", "numbers");
    grid.forEach(function (r, i) {
      const tr = el("tr");
      r.forEach(function (v, j) {
        const td = el("td", "", v === null ? "pad" : NX.fmt(v));
        if (v !== null) td.style.background = sc.css(v);
        if (v !== null && sc.signed && Math.abs(v) > 0.6 * sc.high) td.style.color = "#fff";
        if (!sc.signed && v !== null && (v - sc.low) / ((sc.high - sc.low) || 1) < 0.55) td.style.color = "#fff";
        if (mark && mark[0] === i && mark[1] === j) td.className = "winner";
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    box.appendChild(t);
    return box;
  }

  /** Padding as text: [[top, bottom], [left, right]] -> "top 2, bottom 2, left 2, right 2" (or "2×2"). */
  function padText(p) {
    if (Array.isArray(p) && Array.isArray(p[0])) {
      if (p[0][0] === p[0][1] && p[1][0] === p[1][1]) return p[0][0] + "\u00d7" + p[1][0];
      return "top " + p[0][0] + ", bottom " + p[0][1] + ", left " + p[1][0] + ", right " + p[1][1];
    }
    return Array.isArray(p) ? p.join("\u00d7") : String(p);
  }

  /** The patch with the cells that hang over the padding set to null (shown as "pad"). */
  function padded(grid, inImage) {
    if (!inImage) return grid;
    return grid.map(function (r, i) { return r.map(function (v, j) { return inImage[i][j] ? v : null; }); });
  }

  function range(list) {
    let lo = Infinity, hi = -Infinity;
    (function walk(v) {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    })(list);
    return NX.maps.scale(lo === hi ? lo - 1 : lo, lo === hi ? hi + 1 : hi);
  }

  /** The verdict: the float64 formula against the float32 forward pass. */
  function verdict(table, a) {
    row(table, "result (float64, textbook loops)", "explain-result", a.result, a.kind === "conv" ? "sum + bias" : "");
    row(table, "activation (float32, real forward pass)", "explain-activation", a.activation,
      "recorded by a forward hook");
    row(table, "difference |result - activation|", "explain-difference", a.difference, "");
    // float32 rounding errors grow with the size of the terms added up, so the difference is measured against
    // that size (for a convolution: the sum of |products| plus |bias|), not against the result, which can be ~0.
    const scale = a.relative > 0 ? a.difference / a.relative : null;
    row(table, "relative difference", "explain-relative", a.relative,
      scale !== null ? "difference / " + NX.fmt(scale) + ", the size of the terms summed" : "");
    row(table, "tolerance (relative)", "explain-tolerance", a.tolerance, "float32 rounding");
    const ok = !!a.within;
    const v = el("div", "verdict " + (ok ? "ok" : "bad"),
      ok ? "\u2713 within tolerance: the layer computed exactly what the formula says (up to float32 rounding)"
        : "\u2717 MISMATCH: the forward pass differs from the formula by more than the tolerance");
    v.id = "explain-within";
    v.dataset.within = String(ok);
    return v;
  }

  /** Convolution: per input channel the patch, the kernel and their products; then the sums. */
  function conv(box, a) {
    const cin = a.patch.length;
    box.appendChild(el("p", "", "Output pixel [" + a.channel + ", " + a.y + ", " + a.x + "] of " + a.layer +
      " = bias + \u03a3 (input patch \u00d7 kernel) over " + cin + " input channel" + (cin > 1 ? "s" : "") +
      " \u00d7 " +
      a.kernel[0].length + "\u00d7" + a.kernel[0][0].length + " taps. stride " + a.stride.join("\u00d7") +
      ", padding " + padText(a.padding) + ", dilation " + a.dilation.join("\u00d7") + ", groups " + a.groups +
      " (a patch cell reads 0 where it hangs over the padding)."));
    // the verdict first: the whole sum, next to the forward pass's value; the terms of the sum below it
    const table = el("table", "result");
    const taps = cin * a.kernel[0].length * a.kernel[0][0].length;
    row(table, "sum of all " + taps + " products", "explain-sum", a.sum, "");
    row(table, "bias", "explain-bias", a.bias === null ? 0 : a.bias, a.bias === null ? "this layer has no bias" : "");
    box.appendChild(table);
    box.appendChild(verdict(table, a));
    const sP = range(a.patch), sK = range(a.kernel), sM = range(a.products);
    // one line per input channel: three small pictures and that channel's share of the sum
    const list = el("div", "channel-list");
    const detail = el("div", "channel-detail");
    const sums = a.products.map(function (m) {   // each input channel's share of the sum
      let t = 0;
      m.forEach(function (r) { r.forEach(function (v) { t += v; }); });
      return t;
    });
    function show(ci) {
      detail.innerHTML = "";
      detail.appendChild(el("div", "grid-title", "input channel " + ci + ": the numbers"));
      const g = el("div", "grids");
      g.appendChild(numberGrid("patch (input channel " + (a.input_channels ? a.input_channels[ci] : ci) + ")",
        padded(a.patch[ci], a.in_image), sP));
      g.appendChild(el("div", "op", "\u00d7"));
      g.appendChild(numberGrid("kernel", a.kernel[ci], sK));
      g.appendChild(el("div", "op", "="));
      g.appendChild(numberGrid("products", a.products[ci], sM));
      g.appendChild(el("div", "op", "\u03a3 = " + NX.fmt(sums[ci])));
      detail.appendChild(g);
      list.querySelectorAll(".channel").forEach(function (n, i) { n.classList.toggle("selected", i === ci); });
    }
    a.patch.forEach(function (_, ci) {
      const item = el("div", "channel");
      item.title = "input channel " + ci + ": click for its numbers";
      [[a.patch[ci], sP], [a.kernel[ci], sK], [a.products[ci], sM]].forEach(function (p) {
        const R = p[0].length, S = p[0][0].length;
        item.appendChild(NX.maps.image(S, R, function (r, s) { return p[0][r][s]; }, p[1].rgb, 30));
      });
      item.appendChild(el("span", "channel-sum", ci + ": " + NX.fmt(sums[ci])));
      item.addEventListener("click", function () { show(ci); });
      list.appendChild(item);
    });
    if (cin > 1) {
      box.appendChild(el("div", "note", "the terms, per input channel: patch, kernel, products, and their sum " +
        "(click one for its numbers)"));
    }
    if (cin > 1) box.appendChild(list);
    box.appendChild(detail);
    let biggest = 0;
    sums.forEach(function (s, i) { if (Math.abs(s) > Math.abs(sums[biggest])) biggest = i; });
    show(biggest);
  }

  /** Pooling: the window, the winner (max) or the mean (avg). */
  function pool(box, a) {
    const isMax = a.kind === "maxpool";
    box.appendChild(el("p", "", "Output pixel [" + a.channel + ", " + a.y + ", " + a.x + "] of " + a.layer + " = " +
      (isMax ? "the largest value of its input window (the winner, outlined; only it gets a gradient in backward)"
        : "the mean of its input window")));
    box.appendChild(numberGrid("input window", a.window, range(a.window), isMax ? a.winner : null));
    const table = el("table", "result");
    if (!isMax) {
      row(table, "sum of the window", "explain-sum", a.sum, "");
      row(table, "divisor", "explain-divisor", a.divisor, "cells counted (padding per count_include_pad)");
    }
    box.appendChild(table);
    box.appendChild(verdict(table, a));
  }

  /** Batch norm (eval mode): normalise with the running statistics, then scale and shift. */
  function batchnorm(box, a) {
    box.appendChild(el("p", "", "Output pixel [" + a.channel + ", " + a.y + ", " + a.x + "] of " + a.layer +
      " = (value \u2212 mean) / std \u00d7 gamma + beta, with std = \u221a(var + eps): channel " + a.channel +
      "'s running statistics, learned in training and frozen in eval mode."));
    const table = el("table", "result");
    row(table, "value (the layer's input)", "explain-value", a.value, "");
    row(table, "running mean", "explain-mean", a.mean, "");
    row(table, "running var", "explain-var", a.var, "eps = " + a.eps);
    row(table, "std = \u221a(var + eps)", "explain-std", a.std, "");
    row(table, "normalized = (value \u2212 mean) / std", "explain-normalized", a.normalized, "");
    row(table, "gamma (weight)", "explain-gamma", a.gamma, "");
    row(table, "beta (bias)", "explain-beta", a.beta, "");
    box.appendChild(table);
    box.appendChild(verdict(table, a));
  }

  /** Fill the #explain panel with answer `a` of /api/explain. */
  function render(a) {
    const box = document.getElementById("explain-body");
    box.innerHTML = "";
    const kind = el("div", "explain-kind", a.layer + " (" + (a.type || a.kind) + ")");
    kind.id = "explain-kind";
    box.appendChild(kind);
    if (a.kind === "conv") conv(box, a);
    else if (a.kind === "maxpool" || a.kind === "avgpool") pool(box, a);
    else if (a.kind === "batchnorm") batchnorm(box, a);
    else box.appendChild(el("p", "", "no explanation of kind " + a.kind));
  }

  NX.explain = { render: render };
})(window.NX);
