// Viewing with NiiVue: the main view (one channel, multiplanar, segmentation, label and region
// overlays, drawing) and the grid of relevance panels (one per input channel of the model,
// signed relevance, the region's contour). All views share one crosshair. Volumes reach NiiVue as in-memory NIfTI files built
// from the study's own affine, so NiiVue's orientation labels and millimetres are the study's.
import { Niivue, SLICE_TYPE, PEN_TYPE, SHOW_RENDER } from '../node_modules/@niivue/niivue/dist/index.js';
import { niftiBytes, toNative, toWorld } from './nifti-bytes.js';
import { boundary } from './outline.js';

// Outlines: the label file's tumour in yellow, the explained region in green (as in the page's legend).
const LABEL = { R: [0, 255], G: [0, 230], B: [0, 0], A: [0, 255], I: [0, 255] };
const REGION = { R: [0, 0], G: [0, 255], B: [0, 80], A: [0, 255], I: [0, 255] };
export const LAYOUTS = {
  multiplanar: SLICE_TYPE.MULTIPLANAR,
  axial: SLICE_TYPE.AXIAL,
  coronal: SLICE_TYPE.CORONAL,
  sagittal: SLICE_TYPE.SAGITTAL,
};

/** A display copy of a channel: 0–255 over its window, 4× smaller than float32. */
function grey(channel, [lo, hi]) {
  const out = new Uint8Array(channel.length);
  const k = 255 / (hi - lo);
  for (let i = 0; i < channel.length; i++) out[i] = Math.max(0, Math.min(255, (channel[i] - lo) * k));
  return out;
}

// ColorBrewer "Paired" (dark shades first), one per foreground class.
const CLASS_COLOURS = ['#e31a1c', '#1f78b4', '#33a02c', '#ff7f00', '#6a3d9a', '#b15928', '#fb9a99', '#a6cee3'];

/** A NiiVue colormap giving class k of `k` classes its own colour at value k (0 clear). */
export function classColours(k) {
  const m = { R: [0], G: [0], B: [0], A: [0], I: [0] };
  for (let c = 1; c < k; c++) {
    const hex = CLASS_COLOURS[(c - 1) % CLASS_COLOURS.length];
    m.R.push(parseInt(hex.slice(1, 3), 16));
    m.G.push(parseInt(hex.slice(3, 5), 16));
    m.B.push(parseInt(hex.slice(5, 7), 16));
    m.A.push(255);
    m.I.push(Math.round((255 * c) / (k - 1)));
  }
  return m;
}

function makeNiivue(canvas, opts = {}) {
  const nv = new Niivue({
    backColor: [0, 0, 0, 1],
    crosshairColor: [0.2, 0.8, 1, 0.5],
    crosshairWidth: 1,
    show3Dcrosshair: false,
    isOrientCube: false,
    dragAndDropEnabled: false,
    isResizeCanvas: true,
    multiplanarShowRender: SHOW_RENDER.NEVER,
    ...opts,
  });
  nv.addColormap('seglrp_label', LABEL);
  nv.addColormap('seglrp_region', REGION);
  return nv;
}

/** Columns of the panel grid for `n` panels: one row up to 3, then 2×2, 3×2, 4×2. */
export const gridColumns = (n) => (n <= 3 ? Math.max(1, n) : n === 4 ? 2 : n <= 6 ? 3 : 4);

export class Viewer {
  /**
   * `main`: the main view's canvas; `grid`: the element the relevance panels go in (built by
   * `setPanels`); `onPick(voxel)` on a double click, `onMove(voxel)` when the crosshair moves.
   */
  constructor(main, grid, { onPick, onMove } = {}) {
    this.mainCanvas = main;
    this.grid = grid;
    /** `[{figure, canvas, caption, nv}]`: panels are kept and reused (a page may hold only
     * so many WebGL contexts), those past the model's channel count hidden. */
    this.panelViews = [];
    this.shown = 0;
    this.onPick = onPick;
    this.onMove = onMove;
    this.study = null;
    this.overlays = { mask: null, classes: 2, label: null, region: null, relevance: null };
    this.threshold = 0.05;
    this.opacity = 0.8;
    this.ready = this.attach();
  }

  async attach() {
    this.main = makeNiivue(this.mainCanvas);
    await this.main.attachToCanvas(this.mainCanvas);
    this.main.setSliceType(SLICE_TYPE.MULTIPLANAR);
    this.main.onLocationChange = () => this.onMove?.(this.crosshair());
    // A double click explains; single clicks and drags only navigate.
    this.mainCanvas.addEventListener('dblclick', () => setTimeout(() => this.onPick?.(this.crosshair()), 0));
  }

  /** The panels in use, one per channel. */
  get panels() {
    return this.panelViews.slice(0, this.shown).map((p) => p.nv);
  }

  /** The panels' captions (figcaption elements), one per channel. */
  get captions() {
    return this.panelViews.slice(0, this.shown).map((p) => p.caption);
  }

  /** One relevance panel per name (the model's channels), laid out in a grid. */
  async setPanels(names) {
    await this.ready;
    while (this.panelViews.length < names.length) {
      const figure = document.createElement('figure');
      const box = document.createElement('div');
      box.className = 'panel';
      const canvas = document.createElement('canvas');
      box.append(canvas);
      const caption = document.createElement('figcaption');
      figure.append(box, caption);
      this.grid.append(figure);
      const nv = makeNiivue(canvas, { isRuler: false });
      await nv.attachToCanvas(canvas);
      nv.setSliceType(SLICE_TYPE.AXIAL);
      this.panelViews.push({ figure, canvas, caption, nv });
    }
    this.panelViews.forEach((p, i) => {
      p.figure.hidden = i >= names.length;
      p.canvas.dataset.channel = names[i] ?? '';
      p.caption.textContent = names[i] ?? '';
    });
    this.shown = names.length;
    this.grid.style.gridTemplateColumns = `repeat(${gridColumns(names.length)}, minmax(0, 320px))`;
    const all = [this.main, ...this.panels];
    for (const nv of [this.main, ...this.panelViews.map((p) => p.nv)])
      nv.broadcastTo(
        all.filter((o) => o !== nv),
        { '2d': true, '3d': true },
      );
  }

  /** The crosshair as a voxel of the study (file order), or null before a study is shown. */
  crosshair() {
    if (!this.study || !this.main.volumes.length) return null;
    const mm = this.main.frac2mm(this.main.scene.crosshairPos, 0, true);
    return toNative(this.study.affine, this.study.dims, mm);
  }

  /** Moves every view's crosshair to voxel `v` (file order). */
  moveTo(v) {
    if (!this.study) return;
    const frac = this.main.mm2frac(toWorld(this.study.affine, v), 0, true);
    for (const nv of [this.main, ...this.panels]) {
      if (!nv.volumes.length) continue;
      nv.scene.crosshairPos = frac;
      nv.drawScene();
    }
    this.onMove?.(this.crosshair());
  }

  /** Canvas-relative CSS pixel where voxel `v` is drawn in the main view's axial tile (tests). */
  axialPoint(v) {
    const frac = this.main.mm2frac(toWorld(this.study.affine, v), 0, true);
    const hit = this.main.frac2canvasPosWithTile(frac, SLICE_TYPE.AXIAL);
    if (!hit) return null;
    const dpr = this.main.uiData.dpr || 1;
    return { x: hit.pos[0] / dpr, y: hit.pos[1] / dpr };
  }

  /**
   * A volume for `load`. `key` names data that does not change while the study is shown (a
   * sequence's grey values): a view already holding it keeps it instead of uploading it again.
   */
  volume(data, name, extra = {}, key = null) {
    const { dims, affine } = this.study;
    return {
      url: name,
      name,
      key: key && `${this.study.id}:${key}`,
      buffer: () => niftiBytes(data, dims, affine),
      ...extra,
    };
  }

  /** Shows a study (or a single file without a study): `channels` Float32Arrays with `windows`. */
  async showStudy({ dims, affine, channels, windows, names }) {
    await this.ready;
    const keep = this.study && this.study.dims.join() === dims.join() ? this.crosshair() : null;
    this.study = {
      id: (this.study?.id ?? 0) + 1,
      dims,
      affine,
      names,
      greys: channels.map((c, i) => grey(c, windows[i])),
    };
    this.sequence = names.length === 6 ? 2 : 0;
    this.overlays = { mask: null, label: null, region: null, relevance: null };
    await this.refreshMain();
    await this.refreshPanels();
    this.moveTo(keep ?? dims.map((d) => Math.floor(d / 2)));
  }

  async setSequence(c) {
    this.sequence = c;
    await this.refreshMain();
  }

  setLayout(name) {
    this.main.setSliceType(LAYOUTS[name] ?? SLICE_TYPE.MULTIPLANAR);
  }

  async setOverlays(o) {
    Object.assign(this.overlays, o);
    await this.refreshMain();
  }

  /** The signed relevance of an explanation (channels × voxels) on the panels, with its region. */
  async showRelevance(relevance, region) {
    const n = relevance.length / this.study.names.length;
    let rmax = 0;
    for (const v of relevance) rmax = Math.max(rmax, Math.abs(v));
    this.overlays.relevance = { relevance, rmax, n };
    // The main view shows no relevance: it is rebuilt only for a new region outline.
    const regionChanged = this.overlays.region !== (region ?? null);
    this.overlays.region = region ?? null;
    if (regionChanged) await this.refreshMain();
    await this.refreshPanels();
  }

  async refreshMain() {
    const s = this.study;
    if (!s) return;
    const o = this.overlays;
    const list = [
      this.volume(
        s.greys[this.sequence],
        `${s.names[this.sequence]}.nii`,
        { cal_min: 0, cal_max: 255 },
        `grey${this.sequence}`,
      ),
    ];
    if (o.mask) {
      // Two classes: the foreground in red; more: one colour per class (background clear).
      const k = Math.max(2, o.classes ?? 2);
      if (k > 2) this.main.addColormap('seglrp_classes', classColours(k));
      const colormap = k > 2 ? 'seglrp_classes' : 'red';
      list.push(this.volume(o.mask, 'segmentation.nii', { colormap, cal_min: 0, cal_max: k - 1, opacity: 0.4 }));
    }
    if (o.label)
      list.push(
        this.volume(boundary(o.label, s.dims), 'label.nii', {
          colormap: 'seglrp_label',
          cal_min: 0.5,
          cal_max: 1,
          opacity: 1,
        }),
      );
    if (o.region)
      list.push(
        this.volume(boundary(o.region, s.dims), 'region.nii', {
          colormap: 'seglrp_region',
          cal_min: 0.5,
          cal_max: 1,
          opacity: 1,
        }),
      );
    await this.load(this.main, list);
  }

  async refreshPanels() {
    const s = this.study;
    if (!s) return;
    const o = this.overlays;
    const contour = o.region ? boundary(o.region, s.dims, { axial: true }) : null;
    await Promise.all(
      this.panels.map((nv, c) => {
        // A preview (a file that is not a study) has no panels.
        if (s.names.length !== this.shown) return this.load(nv, []);
        const list = [this.volume(s.greys[c], `${s.names[c]}.nii`, { cal_min: 0, cal_max: 255 }, `grey${c}`)];
        if (o.relevance) {
          const { relevance, rmax, n } = o.relevance;
          list.push(
            this.volume(relevance.subarray(c * n, (c + 1) * n), `relevance_${c}.nii`, {
              colormap: 'warm',
              colormapNegative: 'winter',
              cal_min: this.threshold * rmax,
              cal_max: rmax,
              opacity: this.opacity,
            }),
          );
        }
        if (contour)
          list.push(
            this.volume(contour, 'region.nii', { colormap: 'seglrp_region', cal_min: 0.5, cal_max: 1, opacity: 1 }),
          );
        return this.load(nv, list);
      }),
    );
  }

  /** Makes `nv` show `list` (bottom first), keeping the leading volumes it already holds. */
  async load(nv, list) {
    const pos = nv.volumes.length ? nv.scene.crosshairPos.slice() : null;
    let keep = 0;
    while (
      keep < nv.volumes.length &&
      keep < list.length &&
      list[keep].key &&
      nv.volumes[keep].seglrpKey === list[keep].key
    )
      keep++;
    while (nv.volumes.length > keep) nv.removeVolumeByIndex(nv.volumes.length - 1);
    for (const { key, buffer, ...opts } of list.slice(keep)) {
      const added = await nv.addVolumeFromUrl({ ...opts, buffer: buffer() });
      added.seglrpKey = key;
    }
    if (pos) nv.scene.crosshairPos = pos;
    nv.drawScene();
  }

  /** Relevance shown from `t` × max|R| (both signs), at opacity `o`. */
  setDisplay({ threshold = this.threshold, opacity = this.opacity }) {
    this.threshold = threshold;
    this.opacity = opacity;
    const r = this.overlays.relevance;
    if (!r) return;
    for (const nv of this.panels) {
      const v = nv.volumes[1];
      if (!v) continue;
      v.cal_min = threshold * r.rmax;
      v.opacity = opacity;
      nv.updateGLVolume();
    }
  }

  /** Drawing a region on the main view: "brush", "box" or null (navigate). */
  setDrawing(kind) {
    const nv = this.main;
    if (!kind) {
      nv.setDrawingEnabled(false);
      return;
    }
    if (!nv.drawBitmap) nv.createEmptyDrawing();
    nv.opts.penType = kind === 'box' ? PEN_TYPE.RECTANGLE : PEN_TYPE.PEN;
    nv.setPenValue(1, kind === 'box');
    nv.setDrawingEnabled(true);
  }

  clearDrawing() {
    if (this.main.drawBitmap) this.main.createEmptyDrawing();
    this.main.drawScene();
  }

  /** The drawing as a 0/1 mask in the study's voxel order (NiiVue keeps it reoriented to RAS). */
  async drawnMask() {
    const nv = this.main;
    if (!nv.drawBitmap || !nv.drawBitmap.some((v) => v)) return null;
    const bytes = await nv.volumes[0].saveToUint8Array('drawing.nii', nv.drawBitmap);
    const offset = new DataView(bytes.buffer, bytes.byteOffset).getFloat32(108, true);
    return Uint8Array.from(bytes.subarray(offset), (v) => (v ? 1 : 0));
  }

  /** The panels in their grid with their captions, as a PNG blob. */
  async figurePng() {
    const captions = this.captions.map((c) => c.textContent);
    const w = this.panelViews[0].canvas.width,
      h = this.panelViews[0].canvas.height;
    const pad = 28;
    const cols = gridColumns(this.shown);
    const out = document.createElement('canvas');
    out.width = cols * w;
    out.height = Math.ceil(this.shown / cols) * (h + pad);
    const ctx = out.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.fillStyle = '#fff';
    ctx.font = `${Math.round(pad * 0.6)}px sans-serif`;
    ctx.textAlign = 'center';
    this.panels.forEach((nv, i) => {
      // A WebGL canvas keeps its pixels only until the frame is shown: draw, then copy at once;
      // without the crosshair, as in the figures of Chlebus et al. 2019.
      const width = nv.opts.crosshairWidth;
      nv.opts.crosshairWidth = 0;
      nv.drawScene();
      const x = (i % cols) * w,
        y = Math.floor(i / cols) * (h + pad);
      ctx.drawImage(nv.canvas, x, y + pad, w, h);
      nv.opts.crosshairWidth = width;
      nv.drawScene();
      ctx.fillText(captions[i], x + w / 2, y + pad * 0.75);
    });
    return new Promise((resolve) => out.toBlob(resolve, 'image/png'));
  }
}
