// The ISA attention explorer (notebook 02), written by isanet: one ES module for every place it is shown. In a
// notebook it is the view of isanet.notebook.attention_explorer.AttentionExplorer (anywidget: a click or an arrow
// key sets the model's pixel, which Python reads; the model menu asks the kernel for another model's capture,
// which arrives as a new payload); in a standalone page (templates/explorer.html, isanet attention, the site) the
// same render() draws from the page's stored capture. The maps are computed here from the stored weights (ISA's
// as uint8 steps of each softmax row's maximum, dense's queries and keys as float16), as isanet.analysis.probe
// computes them. ISANet: Huang et al., arXiv:1907.12273.
"use strict";
const MARKUP = `
<style>
  .isanet-attention-explorer { font-family: system-ui, sans-serif; color: #222; }
  .isanet-attention-explorer .isanet-note { color: #b00; font-weight: bold; }
  .isanet-attention-explorer .isanet-sizes, .isanet-attention-explorer .help,
  .isanet-attention-explorer .isanet-quant { font-size: 0.9em; max-width: 1100px; }
  .isanet-attention-explorer .top { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
  /* an outline, not a border: the canvas's box stays the picture, so click positions map exactly */
  .isanet-attention-explorer .isanet-picker { cursor: crosshair; image-rendering: pixelated; outline: 1px solid #ccc; }
  .isanet-attention-explorer .isanet-picker:focus { outline-color: #e80; }
  .isanet-attention-explorer .panels { display: grid; gap: 10px; margin-top: 10px; }
  .isanet-attention-explorer .panel { margin: 0; }
  .isanet-attention-explorer .panel canvas { width: 100%; height: auto; display: block; }
  .isanet-attention-explorer .panel figcaption { font-size: 0.85em; text-align: center; white-space: pre-line; }
  .isanet-attention-explorer .isanet-status { font-size: 0.8em; color: #555; }
</style>
<div class="isanet-menu-row">model <select class="isanet-model-menu"></select></div>
<div>model: <span class="isanet-model"></span></div>
<div class="isanet-note"></div>
<p class="isanet-sizes"></p>
<div class="top">
  <canvas class="isanet-picker" tabindex="0" title="click a pixel; arrow keys move the query"></canvas>
  <div>
    <b class="isanet-pixel-label"></b>
    <p class="help">Click the picture, or hover it and press the arrow keys (one feature pixel per press).<br>
      Orange: the pixel's block (short range); blue dots: its long-range group; white star: the query.</p>
    <div>maps:
      <label><input type="radio" name="RESOLUTION" value="feature" checked> feature cells</label>
      <label><input type="radio" name="RESOLUTION" value="image"> bilinear, as the logits</label>
    </div>
    <p class="isanet-quant"></p>
    <div class="isanet-status"></div>
  </div>
</div>
<div class="panels isanet-panels"></div>`;
let instances = 0;

function render({model, el}) {  // a new payload (another model) rebuilds the whole view
  el.classList.add("isanet-attention-explorer");
  const api = el.isanet = {ready: false, redraws: 0, lastRedrawMs: null, lastInputMs: null, lastClick: null,
                           state: null, maps: null};
  let teardown = null;
  function build() {
    if (teardown) teardown();
    api.ready = false;
    api.state = null;
    el.innerHTML = MARKUP.replaceAll("RESOLUTION", `isanet-resolution-${++instances}`);
    teardown = view(model, el, api);
  }
  build();
  model.on("change:payload", build);
  return () => { model.off("change:payload", build); if (teardown) teardown(); };
}

function view(model, el, api) {
  const D = model.get("payload");
  const find = (name) => el.querySelector(`.isanet-${name}`);
  const H = D.image.height, W = D.image.width, fh = D.feature.height, fw = D.feature.width;
  const P = D.partition;

  // ---------------------------------------------------------------- decoding the stored numbers
  function bytes(text) {
    const bin = atob(text), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function float32(text) { const b = bytes(text); return new Float32Array(b.buffer, 0, b.length / 4); }
  function float16(text) {  // IEEE half -> float32 through a 64k-entry table
    const b = bytes(text), half = new Uint16Array(b.buffer, 0, b.length / 2), table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h >> 15 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
      table[h] = e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity)
                                                           : sign * (1 + m / 1024) * 2 ** (e - 15);
    }
    const out = new Float32Array(half.length);
    for (let i = 0; i < half.length; i++) out[i] = table[half[i]];
    return out;
  }
  function rows(stored) {  // uint8 codes of each softmax row, relative to the row's float32 maximum
    return {n: stored.shape[2], members: stored.shape[1], codes: bytes(stored.codes), scale: float32(stored.scale)};
  }
  // value(group, query member, key member), as ISAAttention indexes it
  function weight(r, group, query, key) {
    const row = group * r.members + query;
    return r.codes[row * r.n + key] / D.levels * r.scale[row];
  }
  const longR = D.long_range ? rows(D.long_range) : null;
  const shortR = D.short_range ? rows(D.short_range) : null;
  const dense = D.dense ? {C: D.dense.channels, q: float16(D.dense.query), k: float16(D.dense.key)} : null;

  // ---------------------------------------------------------------- coordinates (isanet.analysis.probe)
  function axisToFeature(v, image, feature) {
    let pos;
    if (D.align_corners) pos = image > 1 ? v * (feature - 1) / (image - 1) : 0;
    else pos = (v + 0.5) * feature / image - 0.5;
    return Math.min(Math.max(Math.floor(pos + 0.5), 0), feature - 1);
  }
  function axisToImage(i, feature, image) {
    if (D.align_corners) return feature > 1 ? i * (image - 1) / (feature - 1) : 0;
    return (i + 0.5) * image / feature - 0.5;
  }
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

  // ---------------------------------------------------------------- maps (probe.long_range_map & co.)
  function crop(padded, ph, pw, top, left) {
    const out = new Float64Array(fh * fw);
    let total = 0, kept = 0;
    for (let i = 0; i < padded.length; i++) total += padded[i];
    for (let r = 0; r < fh; r++) for (let c = 0; c < fw; c++) {
      const v = padded[(r + top) * pw + c + left];
      out[r * fw + c] = v; kept += v;
    }
    return {feature: out, padding_mass: Math.max(total - kept, 0)};
  }
  function isaMaps(fr, fc) {
    const y = fr + P.pad_top, x = fc + P.pad_left, oy = y % P.loc_h, ox = x % P.loc_w;
    const by = Math.floor(y / P.loc_h), bx = Math.floor(x / P.loc_w);
    const o = oy * P.loc_w + ox, b = by * P.glb_w + bx, G = P.glb_h * P.glb_w, B = P.loc_h * P.loc_w;
    const size = P.padded_h * P.padded_w;
    const lng = new Float64Array(size), shr = new Float64Array(size), cmp = new Float64Array(size);
    const shortRow = new Float64Array(B);
    for (let q = 0; q < B; q++) shortRow[q] = weight(shortR, b, o, q);
    for (let k = 0; k < G; k++) {
      const ky = Math.floor(k / P.glb_w), kx = k % P.glb_w;
      lng[(ky * P.loc_h + oy) * P.padded_w + kx * P.loc_w + ox] = weight(longR, o, b, k);
    }
    for (let q = 0; q < B; q++) {
      const qy = Math.floor(q / P.loc_w), qx = q % P.loc_w;
      shr[(by * P.loc_h + qy) * P.padded_w + bx * P.loc_w + qx] = shortRow[q];
      // composed[r] = short[p, q] * long[q, r]: r runs over the long-range group of member q
      for (let k = 0; k < G; k++) {
        const ky = Math.floor(k / P.glb_w), kx = k % P.glb_w;
        cmp[(ky * P.loc_h + qy) * P.padded_w + kx * P.loc_w + qx] = shortRow[q] * weight(longR, q, b, k);
      }
    }
    const args = [P.padded_h, P.padded_w, P.pad_top, P.pad_left];
    const inMap = (py, px) => py >= P.pad_top && py < P.pad_top + fh && px >= P.pad_left && px < P.pad_left + fw;
    let longKeys = 0, shortKeys = 0;
    for (let k = 0; k < G; k++) {
      if (inMap(Math.floor(k / P.glb_w) * P.loc_h + oy, (k % P.glb_w) * P.loc_w + ox)) longKeys++;
    }
    for (let q = 0; q < B; q++) {
      if (inMap(by * P.loc_h + Math.floor(q / P.loc_w), bx * P.loc_w + q % P.loc_w)) shortKeys++;
    }
    return {
      long_range: Object.assign(crop(lng, ...args), {keys: longKeys}),
      short_range: Object.assign(crop(shr, ...args), {keys: shortKeys}),
      composed: Object.assign(crop(cmp, ...args), {keys: fh * fw}),
    };
  }
  function denseMap(fr, fc) {  // one row of softmax(Q K^T / sqrt(C)), AttentionCapture.dense_row
    const C = dense.C, n = fh * fw, i = fr * fw + fc, scores = new Float64Array(n), s = C ** -0.5;
    let top = -Infinity;
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let c = 0; c < C; c++) acc += dense.k[j * C + c] * dense.q[i * C + c];
      scores[j] = acc * s;
      if (scores[j] > top) top = scores[j];
    }
    let total = 0;
    for (let j = 0; j < n; j++) { scores[j] = Math.exp(scores[j] - top); total += scores[j]; }
    for (let j = 0; j < n; j++) scores[j] /= total;
    return {feature: scores, padding_mass: 0, keys: n};
  }

  function axisTable(out, inp) {  // source cells and weights of each output row/column of the bilinear resize
    const i0 = new Int32Array(out), i1 = new Int32Array(out), t = new Float64Array(out);
    for (let i = 0; i < out; i++) {
      let src = D.align_corners ? (out > 1 ? i * (inp - 1) / (out - 1) : 0) : (i + 0.5) * inp / out - 0.5;
      if (src < 0) src = 0;
      i0[i] = Math.min(Math.floor(src), inp - 1); i1[i] = Math.min(i0[i] + 1, inp - 1); t[i] = src - i0[i];
    }
    return {i0, i1, t};
  }
  const rowTable = axisTable(H, fh), colTable = axisTable(W, fw), upsampled = new Float64Array(H * W);
  function upsample(values) {  // bilinear fh x fw -> H x W, torch's F.interpolate with D.align_corners
    const ay = rowTable, ax = colTable, out = upsampled;
    for (let r = 0; r < H; r++) {
      const r0 = ay.i0[r] * fw, r1 = ay.i1[r] * fw, ty = ay.t[r];
      for (let c = 0; c < W; c++) {
        const c0 = ax.i0[c], c1 = ax.i1[c], tx = ax.t[c];
        const top = values[r0 + c0] * (1 - tx) + values[r0 + c1] * tx;
        const bottom = values[r1 + c0] * (1 - tx) + values[r1 + c1] * tx;
        out[r * W + c] = top * (1 - ty) + bottom * ty;
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- drawing
  const picture = new Image();
  const picker = find("picker");
  const scale = Math.max(1, Math.min(4, Math.round(480 / Math.max(H, W))));
  picker.width = W * scale; picker.height = H * scale;
  const names = ["long_range", "short_range", "composed", "dense"].filter(
    (name) => name === "dense" ? dense !== null : P !== null);
  const panels = find("panels");
  const columns = H / W < 0.7 && names.length === 4 ? 2 : names.length;
  panels.style.gridTemplateColumns = `repeat(${columns}, 1fr)`;
  const canvases = {};
  for (const name of names) {
    const figure = document.createElement("figure");
    figure.className = "panel";
    const caption = document.createElement("figcaption");
    const canvas = document.createElement("canvas");
    canvas.width = W; canvas.height = H; canvas.className = "isanet-panel"; canvas.dataset.name = name;
    figure.append(caption, canvas);
    panels.append(figure);
    canvases[name] = {canvas, caption};
  }

  // the colour map as RGBA words (alpha 166 = 0.65, as the notebook's overlay), in the platform's byte order
  const colours = new Uint32Array(256), littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  D.colormap.forEach(([r, g, b], i) => {
    colours[i] = (littleEndian ? (166 << 24) | (b << 16) | (g << 8) | r : (r << 24) | (g << 16) | (b << 8) | 166) >>> 0;
  });

  function formatG(v) {  // Python's format(v, ".2g")
    if (v === 0) return "0";
    const exponent = Math.floor(Math.log10(Math.abs(Number(v.toPrecision(2)))));
    if (exponent < -4 || exponent >= 2) {
      const [mantissa, power] = v.toExponential(1).split("e");
      const p = Number(power);
      return `${mantissa.replace(/\.0$/, "")}e${p < 0 ? "-" : "+"}${String(Math.abs(p)).padStart(2, "0")}`;
    }
    return String(Number(v.toPrecision(2)));
  }

  function drawPanel(name, map, pixel, resolution) {
    const {canvas, caption} = canvases[name];
    const values = resolution === "image" ? upsample(map.feature) : map.feature;
    const w = resolution === "image" ? W : fw, h = resolution === "image" ? H : fh;
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < values.length; i++) { if (values[i] < lo) lo = values[i]; if (values[i] > hi) hi = values[i]; }
    const layer = new ImageData(w, h), span = hi > lo ? hi - lo : 1, pixels = new Uint32Array(layer.data.buffer);
    for (let i = 0; i < values.length; i++) {  // matplotlib's Normalize + 256-colour lookup, alpha 0.65
      pixels[i] = colours[Math.min(255, Math.max(0, Math.floor((values[i] - lo) / span * 256)))];
    }
    const off = document.createElement("canvas");
    off.width = w; off.height = h; off.getContext("2d").putImageData(layer, 0, 0);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(picture, 0, 0, W, H);
    ctx.drawImage(off, 0, 0, W, H);
    star(ctx, pixel[1] + 0.5, pixel[0] + 0.5, Math.max(6, W / 40));
    let title = `${D.titles[name]}\n${map.keys} keys, max ${formatG(hi)}`;
    if (map.padding_mass > 1e-4) title += `, ${Math.round(map.padding_mass * 100)}% on padding`;
    caption.textContent = title;
  }
  function star(ctx, x, y, radius) {
    ctx.beginPath();
    for (let i = 0; i < 10; i++) {
      const r = i % 2 ? radius * 0.45 : radius, a = -Math.PI / 2 + i * Math.PI / 5;
      ctx.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
    }
    ctx.closePath(); ctx.fillStyle = "white"; ctx.fill(); ctx.lineWidth = Math.max(1, radius / 6);
    ctx.strokeStyle = "black"; ctx.stroke();
  }

  function drawPicker(pixel, feature) {
    const ctx = picker.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(picture, 0, 0, W * scale, H * scale);
    if (P) {
      const sy = H / fh, sx = W / fw, y = feature[0] + P.pad_top, x = feature[1] + P.pad_left;
      const top = Math.floor(y / P.loc_h) * P.loc_h - P.pad_top, left = Math.floor(x / P.loc_w) * P.loc_w - P.pad_left;
      ctx.strokeStyle = "rgb(255,140,0)"; ctx.lineWidth = Math.max(2, scale);
      ctx.strokeRect(left * sx * scale, top * sy * scale, P.loc_w * sx * scale, P.loc_h * sy * scale);
      const radius = Math.max(2, scale + 1);
      for (let py = y % P.loc_h; py < P.padded_h; py += P.loc_h) for (let px = x % P.loc_w; px < P.padded_w;
                                                                   px += P.loc_w) {
        const gy = py - P.pad_top, gx = px - P.pad_left;
        if (gy < 0 || gy >= fh || gx < 0 || gx >= fw || (gy === feature[0] && gx === feature[1])) continue;
        const cy = (axisToImage(gy, fh, H) + 0.5) * scale, cx = (axisToImage(gx, fw, W) + 0.5) * scale;
        ctx.beginPath(); ctx.arc(cx, cy, radius, 0, 2 * Math.PI);
        ctx.fillStyle = "rgb(40,120,255)"; ctx.fill(); ctx.strokeStyle = "white"; ctx.lineWidth = 1; ctx.stroke();
      }
    }
    const cy = (pixel[0] + 0.5) * scale, cx = (pixel[1] + 0.5) * scale, arm = 6 * scale;
    for (const [colour, width] of [["black", 5], ["white", 2]]) {
      ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.beginPath();
      ctx.moveTo(cx - arm, cy); ctx.lineTo(cx + arm, cy); ctx.moveTo(cx, cy - arm); ctx.lineTo(cx, cy + arm);
      ctx.stroke();
    }
  }

  function labelText(pixel, feature) {  // AttentionExplorer.pixel_text
    let text = `pixel (${pixel[0]}, ${pixel[1]}) in the ${H}×${W} image → ` +
      `feature (${feature[0]}, ${feature[1]}) of ${fh}×${fw}`;
    if (P) {
      const y = feature[0] + P.pad_top, x = feature[1] + P.pad_left;
      text += `; block (${Math.floor(y / P.loc_h)}, ${Math.floor(x / P.loc_w)}), ` +
        `in-block offset (${y % P.loc_h}, ${x % P.loc_w})`;
    }
    return text;
  }

  function resolution() { return el.querySelector("input[type=radio]:checked").value; }

  function redraw() {
    const start = performance.now();
    const {pixel, feature} = api.state;
    const maps = P ? isaMaps(feature[0], feature[1]) : {};
    if (dense) maps.dense = denseMap(feature[0], feature[1]);
    find("pixel-label").textContent = labelText(pixel, feature);
    drawPicker(pixel, feature);
    for (const name of names) drawPanel(name, maps[name], pixel, resolution());
    api.maps = maps;
    api.redraws += 1;
    api.lastRedrawMs = performance.now() - start;
    const status = model.get("status");
    find("status").textContent = `${status ? status + "; " : ""}redrawn in ${api.lastRedrawMs.toFixed(1)} ms`;
  }

  // select(row, col, "image" | "feature"): the query pixel, as AttentionExplorer.select
  api.select = function (row, col, coords = "image") {
    let pixel, feature;
    if (coords === "image") {
      pixel = [clamp(Math.floor(row), 0, H - 1), clamp(Math.floor(col), 0, W - 1)];
      feature = [axisToFeature(pixel[0], H, fh), axisToFeature(pixel[1], W, fw)];
    } else {
      feature = [clamp(Math.floor(row), 0, fh - 1), clamp(Math.floor(col), 0, fw - 1)];
      pixel = [clamp(Math.round(axisToImage(feature[0], fh, H)), 0, H - 1),
               clamp(Math.round(axisToImage(feature[1], fw, W)), 0, W - 1)];
    }
    api.state = {pixel, feature};
    redraw();
    const known = model.get("pixel");
    if (!known || known[0] !== pixel[0] || known[1] !== pixel[1]) {  // tell the model (a kernel reads it)
      model.set("pixel", pixel);
      model.save_changes();
    }
    return pixel;
  };
  function onPixel() {  // the model's pixel, set elsewhere (Python's select): draw it
    const [row, col] = model.get("pixel");
    if (api.state && (api.state.pixel[0] !== row || api.state.pixel[1] !== col)) api.select(row, col);
  }

  picker.addEventListener("click", (event) => {
    // offsetX/Y count from the canvas's padding box, clientWidth/Height exclude any border
    api.lastClick = [event.offsetY, event.offsetX, picker.clientHeight, picker.clientWidth];
    api.select(event.offsetY / picker.clientHeight * H, event.offsetX / picker.clientWidth * W);
    api.lastInputMs = performance.now() - event.timeStamp;  // from the browser's input event to drawn
    picker.focus({preventScroll: true});
  });
  // focus for the arrow keys, without scrolling: a page that jumps under the pointer moves the click
  picker.addEventListener("mouseenter", () => picker.focus({preventScroll: true}));
  picker.addEventListener("keydown", (event) => {
    const steps = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
    if (!(event.key in steps)) return;
    event.preventDefault();
    const [dy, dx] = steps[event.key], f = api.state.feature;
    api.select(f[0] + dy, f[1] + dx, "feature");
  });
  for (const input of el.querySelectorAll("input[type=radio]")) input.addEventListener("change", redraw);

  // ---------------------------------------------------------------- the figures in words
  const S = D.sizes, kB = (bytes) => (bytes / 1000).toLocaleString("en", {maximumFractionDigits: 0});
  find("model").textContent = D.model;
  find("note").textContent = D.note;
  const menu = find("model-menu"), choices = model.get("choices") || [];
  if (choices.length > 1) {  // the kernel runs the chosen model and sends its capture as a new payload
    choices.forEach((label, index) => menu.add(new Option(label, index)));
    menu.value = String(model.get("model_index"));
    menu.addEventListener("change", () => { model.set("model_index", Number(menu.value)); model.save_changes(); });
  } else {
    find("menu-row").style.display = "none";
  }
  let sizes = `Feature map ${fh}×${fw} (${fh * fw} pixels) for a ${H}×${W} picture. `;
  if (P) {
    const G = P.glb_h * P.glb_w, B = P.loc_h * P.loc_w;
    const padded = P.padded_h * P.padded_w, where = padded === fh * fw ? "" : ` (on the map padded to ` +
      `${P.padded_h}×${P.padded_w})`;
    sizes += `ISA's affinities${where}: HW·(glb_h·glb_w + loc_h·loc_w) = ${padded}·(${G} + ${B}) = ` +
      `${S.isa_numbers.toLocaleString("en")} numbers, ${kB(4 * S.isa_numbers)} kB as float32 ` +
      `(this page holds them all in ${kB(S.isa_stored_bytes)} kB). `;
  }
  sizes += `Dense self-attention's affinity: (HW)² = ${S.dense_numbers.toLocaleString("en")} numbers, ` +
    `${kB(4 * S.dense_numbers)} kB as float32`;
  if (P) sizes += ` — ${(S.dense_numbers / S.isa_numbers).toFixed(0)}× ISA's`;
  sizes += dense ? `; this page stores dense's queries and keys instead (2·HW·C, C = ${dense.C}, float16: ` +
    `${kB(S.dense_qk_bytes)} kB) and forms the clicked row with one softmax.` : ".";
  find("sizes").textContent = sizes;
  find("quant").textContent = "Stored precision: each ISA softmax row as uint8 steps of " +
    "its own maximum (a weight is within max/510 of the model's); the composed map is computed here from the " +
    "two stages; dense queries and keys as float16. Each panel has its own colour scale (its maximum is printed).";

  picture.onload = () => {
    // warm up: a few maps computed at once let the JavaScript engine optimise the loops before the first click
    for (const [r, c] of [[0, 0], [fh - 1, fw - 1], [fh >> 1, fw >> 1]]) {
      if (P) isaMaps(r, c);
      if (dense) denseMap(r, c);
    }
    const [row, col] = model.get("pixel") || D.pixel;
    api.select(row, col);
    api.ready = true;
  };
  picture.src = "data:image/jpeg;base64," + D.image.jpeg;
  model.on("change:pixel", onPixel);
  return () => model.off("change:pixel", onPixel);
}

export default { render };
