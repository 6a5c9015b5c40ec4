// numcnn explore: the input (section 1): draw, upload, or pick a test image.
//
// Drawings follow the datasets' convention: white ink on black, pixels in [0, 1]. The canvas is drawn 10x larger
// than the model's image and averaged down block by block, which is how a thick pen stroke becomes the soft
// gray edges MNIST digits have. The server normalises the pixels with the run's mean and std, as in training.
"use strict";
window.NX = window.NX || {};

(function (NX) {
  const el = function (t, c, x) { return NX.el(t, c, x); };
  const ZOOM = 10;       // drawing canvas pixels per image pixel
  const PAGE = 48;       // test images per gallery page

  // ---- drawing -------------------------------------------------------------------------------------------

  /**
   * Make #draw a drawing surface for an image of shape [C, H, W]. Pointer events cover mouse, pen and touch
   * (CSS touch-action: none keeps a finger from scrolling the page). `onDone(pixels)` gets a Float32Array
   * (C*H*W) after every stroke.
   */
  function drawing(shape, onDone) {
    const [C, H, W] = shape;
    const cv = document.getElementById("draw");
    cv.width = W * ZOOM; cv.height = H * ZOOM;
    const ctx = cv.getContext("2d");
    ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.lineWidth = 2.2 * ZOOM;        // about 2 image pixels wide, like an MNIST pen stroke
    ctx.strokeStyle = "#fff";
    function clear() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, cv.width, cv.height); }
    clear();
    let last = null;
    function at(ev) {
      const r = cv.getBoundingClientRect();
      return [(ev.clientX - r.left) * cv.width / r.width, (ev.clientY - r.top) * cv.height / r.height];
    }
    cv.addEventListener("pointerdown", function (ev) {
      ev.preventDefault();
      cv.setPointerCapture(ev.pointerId);
      last = at(ev);
      ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(last[0] + 0.01, last[1]); ctx.stroke();
    });
    cv.addEventListener("pointermove", function (ev) {
      if (!last) return;
      const p = at(ev);
      ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
      last = p;
    });
    function end() { if (last) { last = null; onDone(pixels()); } }
    cv.addEventListener("pointerup", end);
    cv.addEventListener("pointercancel", end);
    /** Average each ZOOM x ZOOM block of the canvas into one pixel in [0, 1] (copied to every channel). */
    function pixels() {
      const img = ctx.getImageData(0, 0, cv.width, cv.height).data;
      const out = new Float32Array(C * H * W);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          let s = 0;
          for (let dy = 0; dy < ZOOM; dy++) {
            for (let dx = 0; dx < ZOOM; dx++) s += img[4 * ((y * ZOOM + dy) * cv.width + x * ZOOM + dx)];
          }
          for (let c = 0; c < C; c++) out[(c * H + y) * W + x] = s / (ZOOM * ZOOM * 255);
        }
      }
      return out;
    }
    document.getElementById("draw-clear").addEventListener("click", clear);
    return { clear: clear, pixels: pixels };
  }

  // ---- upload ---------------------------------------------------------------------------------------------

  /** POST the chosen file to /api/upload; show the prepared image and the steps the server took. */
  function upload(onInput, onError) {
    const input = document.getElementById("upload-file");
    input.addEventListener("change", async function () {
      if (!input.files.length) return;
      const box = document.getElementById("upload-result");
      box.innerHTML = "";
      try {
        const answer = await NX.api.upload(input.files[0],
          { invert: document.getElementById("upload-invert").value, fit: document.getElementById("upload-fit").value });
        const arr = NX.api.unpack(answer.pixels);
        box.appendChild(NX.maps.inputImage(arr, 112));
        const steps = el("ol", "steps");
        steps.id = "upload-steps";
        (answer.steps || []).forEach(function (s) { steps.appendChild(el("li", "", s)); });
        box.appendChild(steps);
        onInput({ pixels: answer.pixels }, "upload " + input.files[0].name);
      } catch (e) {
        onError(e, box);
      }
      input.value = "";
    });
  }

  // ---- test images ---------------------------------------------------------------------------------------

  /**
   * The gallery of test images for a query ({label: k}, {misclassified: 1} or {true: i, pred: j}), paged.
   * Each thumbnail shows the true label and the prediction; clicking one makes it the input.
   */
  function gallery(run, onInput, onError) {
    const box = document.getElementById("gallery");
    const title = document.getElementById("gallery-title");
    const nav = document.getElementById("gallery-nav");
    let query = null, offset = 0, what = "";
    async function show(q, o, text) {
      query = q; offset = o; what = text;
      title.textContent = "loading " + text + " ...";
      try {
        const ans = await NX.api.examples(q, o, PAGE);
        box.innerHTML = "";
        title.textContent = text + ": " + ans.total + " image" + (ans.total === 1 ? "" : "s") +
          (ans.total > PAGE ? " (" + (o + 1) + "\u2013" + Math.min(o + PAGE, ans.total) + ")" : "");
        ans.items.forEach(function (it) { box.appendChild(thumb(it, run.classes, onInput)); });
        nav.innerHTML = "";
        const previous = function () { show(query, Math.max(0, offset - PAGE), what); };
        const next = function () { show(query, offset + PAGE, what); };
        if (o > 0) nav.appendChild(button("\u2190 previous", previous));
        if (o + PAGE < ans.total) nav.appendChild(button("next \u2192", next));
      } catch (e) {
        title.textContent = text;
        onError(e, box);
      }
    }
    return { show: show };
  }

  function thumb(it, classes, onInput) {
    const item = el("button", "example" + (it.label !== it.pred ? " wrong" : ""));
    item.dataset.index = it.index;
    item.title = "test image " + it.index + ": " + classes[it.label] + ", predicted " + classes[it.pred];
    item.appendChild(NX.maps.inputImage(NX.api.unpack(it.image), 44));
    const caption = it.label === it.pred ? classes[it.label] : classes[it.label] + "\u2192" + classes[it.pred];
    item.appendChild(el("span", "example-caption", caption));
    item.addEventListener("click", function () { onInput({ test: it.index }, "test image " + it.index); });
    return item;
  }

  function button(text, f) { const b = el("button", "", text); b.addEventListener("click", f); return b; }

  NX.input = { drawing: drawing, upload: upload, gallery: gallery };
})(window.NX);
