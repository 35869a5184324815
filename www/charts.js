// The two plots, drawn on 2-D canvases so that they export as PNG as shown: the bar chart of one
// explanation's per-channel shares, and the cohort's parallel coordinates (Chlebus et al.'s
// normalized_fg_relevance_parallel figure: one line per study, the model's channels on the x axis).

// ColorBrewer "Paired", as in the figures of Chlebus et al. 2019.
const PAIRED = [
  '#a6cee3',
  '#1f78b4',
  '#b2df8a',
  '#33a02c',
  '#fb9a99',
  '#e31a1c',
  '#fdbf6f',
  '#ff7f00',
  '#cab2d6',
  '#6a3d9a',
  '#ffff99',
  '#b15928',
];
export const colourOf = (i) => PAIRED[i % PAIRED.length];

function setup(canvas, w, h) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  ctx.font = '12px sans-serif';
  return ctx;
}

/** Bars of `shares` (fractions summing to 1) for `names`; null: says there are none. */
export function drawBars(canvas, names, shares, title) {
  const w = 420,
    h = 220,
    left = 80,
    right = 60,
    top = 26,
    row = (h - top - 10) / names.length;
  const ctx = setup(canvas, w, h);
  ctx.fillStyle = '#222';
  ctx.fillText(title, 8, 16);
  if (!shares) {
    ctx.fillText("No positive relevance: every voxel's relevance is zero or negative.", 8, top + 20);
    return;
  }
  const max = Math.max(...shares, 1e-12);
  names.forEach((name, i) => {
    const y = top + i * row;
    ctx.fillStyle = '#222';
    ctx.textAlign = 'right';
    ctx.fillText(name, left - 6, y + row * 0.65);
    ctx.fillStyle = '#d62728';
    ctx.fillRect(left, y + row * 0.15, (w - left - right) * (shares[i] / max), row * 0.7);
    ctx.fillStyle = '#222';
    ctx.textAlign = 'left';
    ctx.fillText(
      `${(100 * shares[i]).toFixed(1)} %`,
      left + (w - left - right) * (shares[i] / max) + 4,
      y + row * 0.65,
    );
  });
}

/**
 * Parallel coordinates of the cohort's normalised relevance: `rows` = [{name, shares}], the
 * shares in `names` order, drawn on the axes `order` (indices into `names`).
 */
export function drawParallel(canvas, names, order, rows) {
  const w = 640,
    h = 360,
    left = 60,
    right = 30,
    top = 20,
    bottom = 56;
  const ctx = setup(canvas, w, h);
  // Rows without shares (no positive relevance) have no line; the table and CSV say why.
  rows = rows.filter((r) => r.shares);
  const values = rows.flatMap((r) => order.map((c) => r.shares[c]));
  let lo = values.length ? Math.min(...values) : 0,
    hi = values.length ? Math.max(...values) : 1;
  const padY = (hi - lo) * 0.05 || 0.05;
  lo = Math.max(0, lo - padY);
  hi += padY;
  const X = (k) => left + (k * (w - left - right)) / (order.length - 1);
  const Y = (v) => top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
  ctx.strokeStyle = '#ccc';
  ctx.strokeRect(left, top, w - left - right, h - top - bottom);
  ctx.fillStyle = '#222';
  ctx.textAlign = 'right';
  for (let t = 0; t <= 5; t++) {
    const v = lo + ((hi - lo) * t) / 5;
    ctx.fillText(v.toFixed(3), left - 6, Y(v) + 4);
  }
  ctx.strokeStyle = '#000';
  ctx.textAlign = 'center';
  order.forEach((c, k) => {
    ctx.beginPath();
    ctx.moveTo(X(k), top);
    ctx.lineTo(X(k), h - bottom);
    ctx.stroke();
    ctx.fillText(names[c], X(k), h - bottom + 16);
  });
  ctx.fillText('input channel', (left + w - right) / 2, h - 12);
  ctx.save();
  ctx.translate(16, (top + h - bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText('normalized relevance', 0, 0);
  ctx.restore();
  ctx.lineWidth = 1.6;
  rows.forEach((r, i) => {
    ctx.strokeStyle = colourOf(i);
    ctx.beginPath();
    order.forEach((c, k) => (k ? ctx.lineTo(X(k), Y(r.shares[c])) : ctx.moveTo(X(k), Y(r.shares[c]))));
    ctx.stroke();
  });
  if (!rows.length) {
    ctx.fillStyle = '#888';
    ctx.fillText(
      'Each explanation adds a line here; "Explain the demo cohort" adds one per demo patient.',
      w / 2,
      h / 2,
    );
  }
}

export const pngOf = (canvas) => new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));

/**
 * Perturbation curves: `curves` = [{method, morf: [{logit}], lerf: [{logit}]}], each curve as a
 * fraction of its unperturbed score against the step; MoRF solid, LeRF dashed, one colour per
 * method.
 */
export function drawCurves(canvas, curves, title) {
  const w = 560,
    h = 300,
    left = 50,
    right = 170,
    top = 26,
    bottom = 40;
  const ctx = setup(canvas, w, h);
  ctx.fillStyle = '#222';
  ctx.fillText(title, 8, 16);
  const rel = (c) => c.map((s) => s.logit / Math.max(Math.abs(c[0].logit), 1e-30));
  const lines = curves.flatMap((c, i) => [
    { i, v: rel(c.morf), dash: [] },
    { i, v: rel(c.lerf), dash: [6, 4] },
  ]);
  const values = lines.flatMap((l) => l.v).filter(Number.isFinite);
  const lo = Math.min(0, ...values),
    hi = Math.max(1, ...values);
  const steps = Math.max(1, ...lines.map((l) => l.v.length - 1));
  const X = (k) => left + (k * (w - left - right)) / steps;
  const Y = (v) => top + ((hi - v) / (hi - lo || 1)) * (h - top - bottom);
  ctx.strokeStyle = '#ccc';
  ctx.strokeRect(left, top, w - left - right, h - top - bottom);
  ctx.beginPath();
  ctx.moveTo(left, Y(0));
  ctx.lineTo(w - right, Y(0));
  ctx.stroke();
  ctx.textAlign = 'right';
  for (const v of [lo, 0, 1, hi]) ctx.fillText(v.toFixed(2), left - 4, Y(v) + 4);
  ctx.textAlign = 'center';
  ctx.fillText('step (values replaced)', (left + w - right) / 2, h - 12);
  ctx.lineWidth = 1.8;
  for (const l of lines) {
    ctx.strokeStyle = colourOf(2 * l.i + 1);
    ctx.setLineDash(l.dash);
    ctx.beginPath();
    l.v.forEach((v, k) => (k ? ctx.lineTo(X(k), Y(v)) : ctx.moveTo(X(k), Y(v))));
    ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.textAlign = 'left';
  curves.forEach((c, i) => {
    ctx.fillStyle = colourOf(2 * i + 1);
    ctx.fillText(c.method, w - right + 10, top + 14 + 16 * i);
  });
  ctx.fillStyle = '#222';
  ctx.fillText('score / unperturbed', w - right + 10, top + 14 + 16 * curves.length + 8);
}
