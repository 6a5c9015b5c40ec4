// numcnn explore: how the page gets its data (docs/explore-api.md).
//
// Live mode: the page talks to `numcnn explore RUN` through /api/*.
// Static mode: `numcnn explore RUN --export DIR` wrote the same answers into DIR/data/*.js files, each calling
// window.numcnnStatic(key, answer). fetch() does not work from file://, so they are loaded as <script> tags.
// Every other file of the page asks for data only through NX.api, the same way in both modes.
"use strict";
window.NX = window.NX || {};

(function (NX) {
  // ---- packed arrays: {"dtype": "float32"|"uint8", "shape": [...], "b64": little-endian bytes} ----------------

  /** Decode a packed array into {shape, data: Float32Array|Uint8Array}. */
  function unpack(packed) {
    if (!packed || typeof packed.b64 !== "string") throw new Error("expected a packed array, got " + typeof packed);
    const bin = atob(packed.b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const data = packed.dtype === "uint8" ? bytes : new Float32Array(bytes.buffer);
    return { shape: packed.shape, data: data };
  }

  /** Encode a Float32Array of the given shape as a packed float32 array (browsers are little-endian). */
  function packFloat32(data, shape) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {   // in chunks: apply() takes a limited number of arguments
      bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return { dtype: "float32", shape: shape, b64: btoa(bin) };
  }

  // ---- static mode: answers stored in data/*.js files --------------------------------------------------------

  const stored = {};   // key -> answer, filled by window.numcnnStatic
  window.numcnnStatic = function (key, answer) { stored[key] = answer; };

  /** The file holding the answer for `key`: a "/" in the key is a "-" ("forward/17" -> "data/forward-17.js"). */
  function staticFile(key) {
    return "data/" + encodeURIComponent(key.replace(/\//g, "-")) + ".js";
  }

  /** Load the answer stored for `key` by adding a <script> tag; rejects when the file is missing. */
  function loadStatic(key) {
    if (key in stored) return Promise.resolve(stored[key]);
    return new Promise(function (resolve, reject) {
      const s = document.createElement("script");
      s.src = staticFile(key);
      s.onload = function () {
        if (key in stored) resolve(stored[key]);
        else reject(new Error(staticFile(key) + " did not define '" + key + "'"));
      };
      s.onerror = function () {
        reject(new Error("this export holds no '" + key + "' (" + staticFile(key) + " is missing)"));
      };
      document.head.appendChild(s);
    });
  }

  // ---- live mode: JSON over HTTP ------------------------------------------------------------------------------

  /** GET or POST JSON; an answer {"error": ...} (or any non-2xx) becomes a thrown Error with that message. */
  async function request(path, body, isForm) {
    const opts = body === undefined ? {} : {
      method: "POST",
      body: isForm ? body : JSON.stringify(body),
      headers: isForm ? {} : { "Content-Type": "application/json" },
    };
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new Error("the numcnn explore server does not answer (" + e.message + "); is it still running?");
    }
    let answer = null;
    try { answer = await res.json(); } catch (e) { /* not JSON: reported below */ }
    if (!res.ok || answer === null || (answer && answer.error)) {
      const why = answer && answer.error ? answer.error : "HTTP " + res.status + " " + res.statusText;
      throw new Error(why);
    }
    return answer;
  }

  // ---- the API the page uses ---------------------------------------------------------------------------------

  const api = {
    mode: null,          // "live" or "static", set by start()
    unpack: unpack,
    packFloat32: packFloat32,

    /** Find out whether a server answers (live) or an export is loaded (static); returns /api/run's answer. */
    start: async function () {
      if (location.protocol !== "file:") {
        try {
          const run = await request("api/run");
          api.mode = "live";
          return run;
        } catch (e) {
          // A published export has no server: fall through to the stored answers, else report the server's error.
          try { return await api._startStatic(); } catch (e2) { throw e; }
        }
      }
      return api._startStatic();
    },
    _startStatic: async function () {
      const run = await loadStatic("run");
      api.mode = "static";
      return run;
    },

    metrics: function () { return api.mode === "live" ? request("api/metrics") : loadStatic("metrics"); },

    /** Test images: query {label: k} | {misclassified: 1} | {true: i, pred: j}, with offset and limit. */
    examples: async function (query, offset, limit) {
      if (api.mode === "live") {
        const q = new URLSearchParams(Object.assign({}, query, { offset: offset, limit: limit }));
        return request("api/examples?" + q.toString());
      }
      // The export stores every exported test image once; filter them here as the server would.
      const all = (await loadStatic("examples")).items;
      const keep = all.filter(function (it) {
        if ("label" in query) return it.label === Number(query.label);
        if ("misclassified" in query) return it.label !== it.pred;
        if ("true" in query) return it.label === Number(query.true) && it.pred === Number(query.pred);
        return true;
      });
      return { total: keep.length, items: keep.slice(offset, offset + limit) };
    },

    /** POST an image file; `options`: {invert: "auto"|"yes"|"no", fit: "dataset"|"stretch"}. */
    upload: function (file, options) {
      const form = new FormData();
      form.append("file", file);
      for (const k in options || {}) form.append(k, options[k]);
      return request("api/upload", form, true);
    },

    /** The forward pass for an input spec ({test: i} or {pixels: packed}). */
    forward: function (input) {
      if (api.mode === "live") return request("api/forward", { input: input });
      return loadStatic("forward/" + staticIndex(input));
    },

    /** Saliency and Grad-CAM for class k. */
    saliency: function (input, k) {
      if (api.mode === "live") return request("api/saliency", { input: input, class: k });
      return loadStatic("saliency/" + staticIndex(input) + "/" + k);
    },

    /** One output pixel explained. Static mode: computed here (NX.arith) from the exported layer inputs. */
    explain: async function (input, layer, channel, y, x) {
      if (api.mode === "live") {
        return request("api/explain", { input: input, layer: layer, channel: channel, y: y, x: x });
      }
      const i = staticIndex(input);
      const [stored, forward] = await Promise.all([loadStatic("explain/" + i), loadStatic("forward/" + i)]);
      return NX.arith.explain(stored, forward, layer, channel, y, x);
    },
  };

  function staticIndex(input) {
    if (input && "test" in input) return input.test;
    throw new Error("drawings and uploads need the live app: run `numcnn explore RUN`");
  }

  NX.api = api;
})(window.NX);
