// numcnn explore: one output pixel computed by hand, in float64 JavaScript (static mode).
//
// The live server answers /api/explain with numcnn's naive reference kernel. An export has no server, so it
// stores, per test image, each explainable layer's input and parameters (data/explain/<i>.js), and this file
// does the same textbook arithmetic here. JavaScript numbers are float64, like the server's reference.
"use strict";
window.NX = window.NX || {};

(function (NX) {
  const TOLERANCE = 1e-4;

  function pair(v) { return Array.isArray(v) ? v : [v, v]; }

  /** Convolution padding as [top, left]: [[top, bottom], [left, right]] (as exported), [ph, pw] or one int. */
  function padStart(p) {
    if (Array.isArray(p) && Array.isArray(p[0])) return [p[0][0], p[1][0]];
    return pair(p || 0);
  }

  /** A list of numbers from a packed array or a plain list (null stays null). */
  function numbers(v) {
    if (v === null || v === undefined) return null;
    if (Array.isArray(v)) return v;
    return Array.from(NX.api.unpack(v).data);
  }

  /** An (C, H, W) tensor from a packed array, with get(c, y, x). */
  function tensor3(packed) {
    const t = NX.api.unpack(packed);
    const [C, H, W] = t.shape;
    return { C: C, H: H, W: W, get: function (c, y, x) { return t.data[(c * H + y) * W + x]; } };
  }

  /** The activation the real forward pass produced at (c, y, x) of `layer`, from the stored forward answer. */
  function activationOf(forward, layer, c, y, x) {
    const rec = forward.layers.find(function (l) { return l.name === layer; });
    if (!rec) throw new Error("the forward pass has no layer '" + layer + "'");
    return tensor3(rec.data).get(c, y, x);
  }

  /**
   * Compare the hand result with the recorded float32 activation, as the server does: the difference relative
   * to `scale`, the magnitude of the terms that were summed (float32 rounding errors grow with it), must be at
   * most the tolerance.
   */
  function compare(answer, activation, scale, tolerance) {
    const d = Math.abs(answer.result - activation);
    answer.activation = activation;
    answer.difference = d;
    answer.relative = scale > 0 ? d / scale : (d === 0 ? 0 : Infinity);
    answer.tolerance = tolerance;
    answer.within = answer.relative <= tolerance;
    return answer;
  }

  /**
   * Convolution, one output pixel: out[c, y, x] = bias[c] + sum over input channels ci (of c's group) and kernel
   * taps (r, s) of input[ci, y*stride - padding + r*dilation, x*stride - padding + s*dilation] * weight[c, ci, r, s].
   * Taps that fall in the zero padding read 0.
   */
  function conv(spec, c, y, x) {
    const input = tensor3(spec.input);
    const w = NX.api.unpack(spec.weight);
    const [cout, cinG, R, S] = w.shape;
    const [sh, sw] = pair(spec.stride), [top, left] = padStart(spec.padding), [dh, dw] = pair(spec.dilation || 1);
    const groups = spec.groups || 1;
    const first = Math.floor(c / (cout / groups)) * cinG;   // the first input channel of c's group
    const patch = [], kernel = [], products = [], inImage = [];
    let sum = 0, magnitude = 0;
    for (let r = 0; r < R; r++) {
      inImage.push([]);
      for (let s = 0; s < S; s++) {
        const iy = y * sh - top + r * dh, ix = x * sw - left + s * dw;
        inImage[r].push(iy >= 0 && iy < input.H && ix >= 0 && ix < input.W);
      }
    }
    for (let ci = 0; ci < cinG; ci++) {
      const P = [], K = [], M = [];
      for (let r = 0; r < R; r++) {
        const pr = [], kr = [], mr = [];
        for (let s = 0; s < S; s++) {
          const iy = y * sh - top + r * dh, ix = x * sw - left + s * dw;
          const v = inImage[r][s] ? input.get(first + ci, iy, ix) : 0;
          const k = w.data[((c * cinG + ci) * R + r) * S + s];
          pr.push(v); kr.push(k); mr.push(v * k);
          sum += v * k;
          magnitude += Math.abs(v * k);
        }
        P.push(pr); K.push(kr); M.push(mr);
      }
      patch.push(P); kernel.push(K); products.push(M);
    }
    const bias = numbers(spec.bias);
    const b = bias ? bias[c] : null;
    const inputChannels = [];
    for (let ci = 0; ci < cinG; ci++) inputChannels.push(first + ci);
    return [{
      kind: "conv", kernel_size: [R, S], stride: [sh, sw], padding: spec.padding, dilation: [dh, dw], groups: groups,
      input_channels: inputChannels, origin: [y * sh - top, x * sw - left], in_image: inImage,
      patch: patch, kernel: kernel, products: products, sum: sum, bias: b, result: sum + (b === null ? 0 : b),
    }, magnitude + Math.abs(b || 0)];
  }

  /** The values of a pooling window starting at (y0, x0), null outside the plane. */
  function windowOf(input, c, y0, x0, kh, kw, dh, dw) {
    const rows = [];
    for (let r = 0; r < kh; r++) {
      const row = [];
      for (let s = 0; s < kw; s++) {
        const iy = y0 + r * dh, ix = x0 + s * dw;
        row.push(iy >= 0 && iy < input.H && ix >= 0 && ix < input.W ? input.get(c, iy, ix) : null);
      }
      rows.push(row);
    }
    return rows;
  }

  /** Max pooling, one output pixel: the largest value of its window (the first one wins a tie). */
  function maxpool(spec, c, y, x) {
    const input = tensor3(spec.input);
    const [kh, kw] = pair(spec.kernel_size), [sh, sw] = pair(spec.stride || spec.kernel_size);
    const [ph, pw] = pair(spec.padding || 0), [dh, dw] = pair(spec.dilation || 1);
    const win = windowOf(input, c, y * sh - ph, x * sw - pw, kh, kw, dh, dw);
    let best = null, winner = null;
    win.forEach(function (row, r) {
      row.forEach(function (v, s) { if (v !== null && (best === null || v > best)) { best = v; winner = [r, s]; } });
    });
    const result = best === null ? -Infinity : best;
    return [{ kind: "maxpool", origin: [y * sh - ph, x * sw - pw], window: win, winner: winner, result: result },
      isFinite(result) ? Math.abs(result) : 0];
  }

  /** Average pooling (and adaptive average pooling), one output pixel: the window's sum over PyTorch's divisor. */
  function avgpool(spec, c, y, x) {
    const input = tensor3(spec.input), H = input.H, W = input.W;
    let origin, size, divisor;
    if (spec.output_size) {     // adaptive: window [floor(y*H/oh), ceil((y+1)*H/oh))
      const oh = spec.output_size[0] || H, ow = spec.output_size[1] || W;
      const ys = Math.floor(y * H / oh), ye = Math.ceil((y + 1) * H / oh);
      const xs = Math.floor(x * W / ow), xe = Math.ceil((x + 1) * W / ow);
      origin = [ys, xs]; size = [ye - ys, xe - xs]; divisor = (ye - ys) * (xe - xs);
    } else {
      const [kh, kw] = pair(spec.kernel_size), [sh, sw] = pair(spec.stride || spec.kernel_size);
      const [ph, pw] = pair(spec.padding || 0);
      origin = [y * sh - ph, x * sw - pw]; size = [kh, kw];
      const y1 = Math.min(origin[0] + kh, H + ph), x1 = Math.min(origin[1] + kw, W + pw);
      if (spec.divisor_override) divisor = spec.divisor_override;
      else if (spec.count_include_pad !== false) divisor = (y1 - origin[0]) * (x1 - origin[1]);
      else divisor = (Math.min(y1, H) - Math.max(origin[0], 0)) * (Math.min(x1, W) - Math.max(origin[1], 0));
    }
    const win = windowOf(input, c, origin[0], origin[1], size[0], size[1], 1, 1);
    let sum = 0, magnitude = 0;
    win.forEach(function (row) {
      row.forEach(function (v) { if (v !== null) { sum += v; magnitude += Math.abs(v); } });
    });
    const answer = { kind: "avgpool", origin: origin, window: win, winner: null, sum: sum, divisor: divisor };
    answer.result = sum / divisor;
    return [answer, magnitude / divisor];
  }

  /** Batch norm (eval mode), one value: (value - running mean) / sqrt(running var + eps) * gamma + beta. */
  function batchnorm(spec, c, y, x) {
    const value = tensor3(spec.input).get(c, y, x);
    const mean = numbers(spec.mean)[c], variance = numbers(spec.var)[c], eps = spec.eps;
    const gamma = spec.gamma ? numbers(spec.gamma)[c] : 1, beta = spec.beta ? numbers(spec.beta)[c] : 0;
    const std = Math.sqrt(variance + eps), normalized = (value - mean) / std;
    return [{
      kind: "batchnorm", value: value, mean: mean, var: variance, eps: eps, std: std, normalized: normalized,
      gamma: gamma, beta: beta, result: normalized * gamma + beta,
    }, Math.abs(normalized * gamma) + Math.abs(beta)];
  }

  /** The /api/explain answer for (layer, c, y, x), computed from an export's stored layer inputs. */
  function explain(stored, forward, layer, c, y, x) {
    const layers = stored.layers || stored;
    const spec = layers[layer];
    if (!spec) throw new Error("this export stores no explanation for layer '" + layer + "'");
    // the export says "pool" for both kinds of pooling; the layer's type tells which
    const kind = spec.kind === "pool" ? (spec.type === "MaxPool2d" ? "maxpool" : "avgpool") : spec.kind;
    const how = { conv: conv, maxpool: maxpool, avgpool: avgpool, batchnorm: batchnorm }[kind];
    if (!how) throw new Error("layer '" + layer + "' has no explanation of kind '" + kind + "'");
    const [answer, scale] = how(spec, c, y, x);
    Object.assign(answer, { layer: layer, type: spec.type, channel: c, y: y, x: x });
    return compare(answer, activationOf(forward, layer, c, y, x), scale, stored.tolerance || TOLERANCE);
  }

  NX.arith = { explain: explain, conv: conv, maxpool: maxpool, avgpool: avgpool, batchnorm: batchnorm };
})(window.NX);
