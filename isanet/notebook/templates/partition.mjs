// The ISA partition explorer (notebook 01), written by isanet: one ES module for every place it is shown. In a
// notebook it is the view of isanet.notebook.partition_explorer.PartitionExplorer (anywidget: the sliders and
// clicks set the model's traits, which Python reads); in the standalone page (templates/partition.html) the same
// render() draws from the page's stored data. The padding rule of every slider position comes in the payload
// (isanet.notebook.explorer_pages.axis_table), as the package's Partition computes it; the groups, blocks and the
// two-hop path follow from it. ISANet: Huang et al., arXiv:1907.12273.
"use strict";
const MARKUP = `
<style>
  .isanet-partition-explorer { font-family: system-ui, sans-serif; color: #222; }
  .isanet-partition-explorer .top { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
  .isanet-partition-explorer label.slider { display: block; margin: 4px 0; }
  .isanet-partition-explorer input[type=range] { width: 220px; vertical-align: middle; }
  .isanet-partition-explorer .help { font-size: 0.9em; max-width: 520px; }
  .isanet-partition-explorer .isanet-map { cursor: crosshair; outline: 1px solid #ccc; margin-top: 10px; }
  .isanet-partition-explorer table.isanet-complexity td { padding: 1px 8px 1px 0; font-size: 0.9em; }
  .isanet-partition-explorer .isanet-path { font-weight: bold; }
</style>
<div class="top">
  <div class="controls">
    <label class="slider">map height h <input type="range" class="isanet-height" min="1"> <span class="isanet-height-value"></span></label>
    <label class="slider">map width w <input type="range" class="isanet-width" min="1"> <span class="isanet-width-value"></span></label>
    <label class="slider">down_factor <input type="range" class="isanet-factor" min="1"> <span class="isanet-factor-value"></span></label>
    <div>a click moves the
      <label><input type="radio" name="MOVES" value="source" checked> source</label>
      <label><input type="radio" name="MOVES" value="target"> target</label>
    </div>
    <p class="help">Blue: the source's long-range group (its in-block offset in every block, read in step 1).
      Orange: the target's block (read in step 2). The path runs source &rarr; via (long range) &rarr; target
      (short range). Grey: padding; dashed box: the unpadded map.</p>
    <p><span class="isanet-path"></span></p>
  </div>
  <div class="isanet-formulas"></div>
</div>
<canvas class="isanet-map isanet-partition" title="click a pixel of the map"></canvas>`;
let instances = 0;

function render({model, el}) {
  const D = model.get("payload");
  el.classList.add("isanet-partition-explorer");
  el.innerHTML = MARKUP.replaceAll("MOVES", `isanet-moves-${++instances}`);  // one radio group per view
  const find = (name) => el.querySelector(`.isanet-${name}`);
  const sliders = {height: find("height"), width: find("width"), factor: find("factor")};
  sliders.height.max = sliders.width.max = D.max_size;
  sliders.factor.max = D.max_down_factor;
  const canvas = find("map");
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  const pair = ([a, b]) => `(${a}, ${b})`;
  const api = el.isanet = {ready: false, redraws: 0, state: null, partition: null, via: null};

  function partition(h, w, f) {  // isanet.models.isa.Partition(h, w, f, f), from the stored axis table
    const [glb_h, pad_top, padded_h] = D.axes[String(f)][h - 1], [glb_w, pad_left, padded_w] = D.axes[String(f)][w - 1];
    return {height: h, width: w, loc: f, glb_h, glb_w, pad_top, pad_left, padded_h, padded_w};
  }
  function viaOf(p, source, target) {  // partition_plots.two_hop_path, in padded coordinates
    const sy = source[0] + p.pad_top, sx = source[1] + p.pad_left, ty = target[0] + p.pad_top, tx = target[1] + p.pad_left;
    return [Math.floor(ty / p.loc) * p.loc + sy % p.loc, Math.floor(tx / p.loc) * p.loc + sx % p.loc];
  }

  function formulas(p) {  // partition_plots.complexity_html
    const hw = p.height * p.width, padded = p.padded_h * p.padded_w, G = p.glb_h * p.glb_w, B = p.loc * p.loc;
    const dense = hw * hw, isa = padded * (G + B), n = (v) => v.toLocaleString("en");
    const mib = (entries) => `${(entries * 4 / 2 ** 20).toLocaleString("en", {minimumFractionDigits: 2,
                                                                              maximumFractionDigits: 2})} MiB`;
    const right = p.padded_w - p.width - p.pad_left, bottom = p.padded_h - p.height - p.pad_top;
    const rows = [
      ["map", `h x w = ${p.height} x ${p.width} = ${n(hw)} pixels`],
      ["down_factor", `(loc_h, loc_w) = (${p.loc}, ${p.loc})`],
      ["blocks", `glb_h = ceil(h / loc_h) = ${p.glb_h}, glb_w = ceil(w / loc_w) = ${p.glb_w}`],
      ["padding", `to ${p.padded_h} x ${p.padded_w} (left, right, top, bottom = (${p.pad_left}, ${right}, ` +
                  `${p.pad_top}, ${bottom}))`],
      ["long-range groups", `loc_h·loc_w = ${B} groups of glb_h·glb_w = ${G} pixels`],
      ["short-range groups", `glb_h·glb_w = ${G} blocks of loc_h·loc_w = ${B} pixels`],
      ["dense affinity", `(hw)² = ${n(dense)} entries (${mib(dense)} in float32)`],
      ["ISA affinities", `HpWp·(glb_h·glb_w + loc_h·loc_w) = ${n(padded)}·(${G} + ${B}) = ${n(isa)} entries ` +
                         `(${mib(isa)})`],
      ["dense / ISA", `${(dense / isa).toFixed(1)}x fewer affinity entries with ISA`],
    ];
    const table = document.createElement("table");
    table.className = "isanet-complexity";
    for (const [key, value] of rows) {
      const row = table.insertRow(), name = row.insertCell(), text = row.insertCell();
      name.innerHTML = "<b></b>"; name.firstChild.textContent = key; text.textContent = value;
    }
    find("formulas").replaceChildren(table);
  }

  let cell = 16;
  function draw(p, source, target, via) {
    cell = clamp(Math.floor(Math.min(900 / p.padded_w, 560 / p.padded_h)), 6, 32);
    canvas.width = p.padded_w * cell; canvas.height = p.padded_h * cell;
    const ctx = canvas.getContext("2d");
    const sy = source[0] + p.pad_top, sx = source[1] + p.pad_left, ty = target[0] + p.pad_top, tx = target[1] + p.pad_left;
    for (let y = 0; y < p.padded_h; y++) for (let x = 0; x < p.padded_w; x++) {
      const real = y >= p.pad_top && y < p.pad_top + p.height && x >= p.pad_left && x < p.pad_left + p.width;
      const group = y % p.loc === sy % p.loc && x % p.loc === sx % p.loc;  // the source's long-range group
      const block = Math.floor(y / p.loc) === Math.floor(ty / p.loc) && Math.floor(x / p.loc) === Math.floor(tx / p.loc);
      ctx.fillStyle = group ? "rgb(43,123,186)" : block ? "rgb(253,190,120)" : real ? "#f4f4f4" : "#c8c8c8";
      ctx.fillRect(x * cell, y * cell, cell, cell);
    }
    ctx.strokeStyle = "rgba(0,0,0,0.15)"; ctx.lineWidth = 1;
    for (let y = 0; y <= p.padded_h; y++) { ctx.beginPath(); ctx.moveTo(0, y * cell); ctx.lineTo(canvas.width, y * cell); ctx.stroke(); }
    for (let x = 0; x <= p.padded_w; x++) { ctx.beginPath(); ctx.moveTo(x * cell, 0); ctx.lineTo(x * cell, canvas.height); ctx.stroke(); }
    ctx.strokeStyle = "black"; ctx.lineWidth = 2;  // the blocks
    for (let y = 0; y <= p.padded_h; y += p.loc) { ctx.beginPath(); ctx.moveTo(0, y * cell); ctx.lineTo(canvas.width, y * cell); ctx.stroke(); }
    for (let x = 0; x <= p.padded_w; x += p.loc) { ctx.beginPath(); ctx.moveTo(x * cell, 0); ctx.lineTo(x * cell, canvas.height); ctx.stroke(); }
    ctx.setLineDash([6, 4]);  // the unpadded map
    ctx.strokeRect(p.pad_left * cell, p.pad_top * cell, p.width * cell, p.height * cell);
    ctx.setLineDash([]);
    const centre = ([y, x]) => [(x + 0.5) * cell, (y + 0.5) * cell];
    function arrow([y0, x0], [y1, x1], colour) {
      const [ax, ay] = centre([y0, x0]), [bx, by] = centre([y1, x1]), angle = Math.atan2(by - ay, bx - ax);
      ctx.strokeStyle = ctx.fillStyle = colour; ctx.lineWidth = 3;
      ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke();
      if (ax === bx && ay === by) return;
      const head = Math.max(6, cell * 0.6);
      ctx.beginPath(); ctx.moveTo(bx, by);
      ctx.lineTo(bx - head * Math.cos(angle - 0.4), by - head * Math.sin(angle - 0.4));
      ctx.lineTo(bx - head * Math.cos(angle + 0.4), by - head * Math.sin(angle + 0.4));
      ctx.closePath(); ctx.fill();
    }
    arrow([sy, sx], via, "rgb(20,60,160)");
    arrow(via, [ty, tx], "rgb(200,90,0)");
    ctx.font = `bold ${Math.max(9, Math.floor(cell * 0.7))}px sans-serif`;
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (const [[y, x], letter] of [[[sy, sx], "S"], [via, "V"], [[ty, tx], "T"]]) {
      const [cx, cy] = centre([y, x]);
      ctx.lineWidth = 3; ctx.strokeStyle = "white"; ctx.strokeText(letter, cx, cy);
      ctx.fillStyle = "black"; ctx.fillText(letter, cx, cy);
    }
  }

  function redraw() {
    api.state = {height: model.get("height"), width: model.get("width"), factor: model.get("down_factor"),
                 source: model.get("source"), target: model.get("target")};
    const {height, width, factor, source, target} = api.state;
    const p = partition(height, width, factor), via = viaOf(p, source, target);
    for (const [name, value] of [["height", height], ["width", width], ["factor", factor]]) {
      sliders[name].value = value; find(`${name}-value`).textContent = value;
    }
    find("path").textContent = `source ${pair(source)} → via ` +
      `${pair([via[0] - p.pad_top, via[1] - p.pad_left])} (long range) → target ${pair(target)} (short range)`;
    formulas(p);
    draw(p, source, target, via);
    api.partition = p; api.via = via; api.redraws += 1;
  }

  // set(height, width, factor): the sliders; the pixels are clamped to the map, as the notebook's sliders are
  api.set = function (height, width, factor) {
    const h = clamp(Math.round(height), 1, D.max_size), w = clamp(Math.round(width), 1, D.max_size);
    const inside = ([r, c]) => [clamp(r, 0, h - 1), clamp(c, 0, w - 1)];
    const source = inside(model.get("source")), target = inside(model.get("target"));
    model.set("height", h); model.set("width", w);
    model.set("down_factor", clamp(Math.round(factor), 1, D.max_down_factor));
    model.set("source", source); model.set("target", target);
    model.save_changes();
  };
  // select("source" | "target", row, col): unpadded map coordinates
  api.select = function (kind, row, col) {
    const height = model.get("height"), width = model.get("width");
    model.set(kind, [clamp(Math.floor(row), 0, height - 1), clamp(Math.floor(col), 0, width - 1)]);
    model.save_changes();
  };
  for (const slider of Object.values(sliders)) {
    slider.addEventListener("input", () => api.set(+sliders.height.value, +sliders.width.value, +sliders.factor.value));
  }
  canvas.addEventListener("click", (event) => {
    const p = api.partition, kind = el.querySelector("input[type=radio]:checked").value;
    const y = Math.floor(event.offsetY / canvas.clientHeight * p.padded_h) - p.pad_top;
    const x = Math.floor(event.offsetX / canvas.clientWidth * p.padded_w) - p.pad_left;
    api.select(kind, y, x);  // a click on the padding moves the pixel to the nearest map pixel
  });

  const keys = ["height", "width", "down_factor", "source", "target"];
  for (const key of keys) model.on(`change:${key}`, redraw);
  redraw();
  api.ready = true;
  return () => { for (const key of keys) model.off(`change:${key}`, redraw); };
}

export default { render };
