// The attention-pattern explorer (notebook 06), written by isanet: one ES module for every place it is shown. In a
// notebook it is the view of isanet.notebook.attention_patterns.ReachExplorer (anywidget: a click, the arrow keys
// and the size slider set the model's traits, which Python reads); in the standalone page (templates/patterns.html)
// the same render() draws from the page's stored data. The reach of every method after one and two layers, for
// every size of the slider, comes in the payload as isanet.analysis.reach computes it from the modules' patterns.
"use strict";
const MARKUP = `
<style>
  .isanet-pattern-explorer { font-family: system-ui, sans-serif; color: #222; }
  .isanet-pattern-explorer .help { font-size: 0.9em; max-width: 1000px; }
  .isanet-pattern-explorer .panels { display: grid; gap: 10px; margin-top: 10px; }
  .isanet-pattern-explorer .panel { margin: 0; }
  .isanet-pattern-explorer .panel canvas { width: 100%; height: auto; display: block; cursor: crosshair;
                                           image-rendering: pixelated; outline: 1px solid #ccc; }
  .isanet-pattern-explorer .panel figcaption { font-size: 0.85em; text-align: center; white-space: pre-line; }
</style>
<label>size (window side = stride = ISA down_factor) <input type="range" class="isanet-size" min="0" step="1">
  <span class="isanet-size-value"></span></label>
<p><b class="isanet-query"></b></p>
<p class="help">Click any panel to move the query (white star); hover a panel and press the arrow keys to step it.
  Blue: the pixels the query has read from after that many stacked layers (the second window layer is shifted, as
  Swin alternates them; every other method repeats its layer). Thin lines: the size grid (windows, ISA blocks).</p>
<div class="panels isanet-panels"></div>`;

function render({model, el}) {
  const D = model.get("payload");
  el.classList.add("isanet-pattern-explorer");
  el.innerHTML = MARKUP;
  const find = (name) => el.querySelector(`.isanet-${name}`);
  const H = D.height, W = D.width, N = H * W, rowBytes = Math.ceil(N / 8);
  const matrices = D.matrices.map((text) => {  // numpy.packbits rows: bit 7 - k % 8 of byte k >> 3
    const bin = atob(text), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  });
  const reached = (matrix, query, key) => (matrix[query * rowBytes + (key >> 3)] >> (7 - (key & 7))) & 1;
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

  const slider = find("size");
  slider.max = D.sizes.length - 1;
  const panels = find("panels");
  panels.style.gridTemplateColumns = `repeat(${D.methods.length}, 1fr)`;
  const scale = Math.max(2, Math.round(160 / W)), canvases = [];
  for (let row = 0; row < D.layers.length; row++) for (const method of D.methods) {
    const figure = document.createElement("figure"), caption = document.createElement("figcaption");
    const canvas = document.createElement("canvas");
    figure.className = "panel"; canvas.className = "isanet-reach"; canvas.width = W * scale; canvas.height = H * scale;
    canvas.tabIndex = 0; canvas.dataset.method = method; canvas.dataset.layers = D.layers[row];
    figure.append(caption, canvas); panels.append(figure);
    canvases.push({canvas, caption, method, row});
  }

  const api = el.isanet = {ready: false, redraws: 0, state: null, counts: null};

  function star(ctx, x, y, radius) {
    ctx.beginPath();
    for (let i = 0; i < 10; i++) {
      const r = i % 2 ? radius * 0.45 : radius, a = -Math.PI / 2 + i * Math.PI / 5;
      ctx.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
    }
    ctx.closePath(); ctx.fillStyle = "white"; ctx.fill(); ctx.lineWidth = 1.5; ctx.strokeStyle = "black"; ctx.stroke();
  }

  function redraw() {
    api.state = {pixel: model.get("pixel"), size: model.get("size")};
    const {pixel, size} = api.state, query = pixel[0] * W + pixel[1], counts = {};
    slider.value = D.sizes.indexOf(size);
    find("size-value").textContent = size;
    find("query").textContent = `query pixel (${pixel[0]}, ${pixel[1]}) of the ${H}×${W} map, ` +
      `size ${size}`;
    for (const {canvas, caption, method, row} of canvases) {
      const matrix = matrices[D.index[String(size)][method][row]], ctx = canvas.getContext("2d");
      let count = 0;
      for (let key = 0; key < N; key++) {
        const on = reached(matrix, query, key);
        count += on;
        ctx.fillStyle = D.colours[on];
        ctx.fillRect((key % W) * scale, Math.floor(key / W) * scale, scale, scale);
      }
      ctx.strokeStyle = "rgba(0,0,0,0.4)"; ctx.lineWidth = 1;
      for (let edge = size; edge < H; edge += size) {
        ctx.beginPath(); ctx.moveTo(0, edge * scale); ctx.lineTo(W * scale, edge * scale); ctx.stroke();
      }
      for (let edge = size; edge < W; edge += size) {
        ctx.beginPath(); ctx.moveTo(edge * scale, 0); ctx.lineTo(edge * scale, H * scale); ctx.stroke();
      }
      star(ctx, (pixel[1] + 0.5) * scale, (pixel[0] + 0.5) * scale, Math.max(4, scale * 1.2));
      const layers = D.layers[row];
      caption.textContent = `${D.labels[method]}, ${layers} layer${layers > 1 ? "s" : ""}\n` +
        `${count} px (${Math.round(100 * count / N)}%)`;
      (counts[method] = counts[method] || [])[row] = count;
    }
    api.counts = counts; api.redraws += 1;
  }

  // select(row, col): the query pixel; setSize(size): one of D.sizes
  api.select = function (row, col) {
    model.set("pixel", [clamp(Math.floor(row), 0, H - 1), clamp(Math.floor(col), 0, W - 1)]);
    model.save_changes();
  };
  api.setSize = function (size) {
    if (!D.sizes.includes(size)) throw new Error(`size must be one of ${D.sizes}`);
    model.set("size", size);
    model.save_changes();
  };
  slider.addEventListener("input", () => api.setSize(D.sizes[+slider.value]));
  for (const {canvas} of canvases) {
    canvas.addEventListener("click", (event) => {
      api.select(event.offsetY / canvas.clientHeight * H, event.offsetX / canvas.clientWidth * W);
      canvas.focus({preventScroll: true});
    });
    canvas.addEventListener("mouseenter", () => canvas.focus({preventScroll: true}));
    canvas.addEventListener("keydown", (event) => {
      const steps = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
      if (!(event.key in steps)) return;
      event.preventDefault();
      api.select(api.state.pixel[0] + steps[event.key][0], api.state.pixel[1] + steps[event.key][1]);
    });
  }

  const keys = ["pixel", "size"];
  for (const key of keys) model.on(`change:${key}`, redraw);
  redraw();
  api.ready = true;
  return () => { for (const key of keys) model.off(`change:${key}`, redraw); };
}

export default { render };
