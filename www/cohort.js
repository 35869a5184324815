// The cohort: one row per explained patient and region, kept in the page (and in
// localStorage, so that a reload does not lose it), exported as CSV. Rows belong to the
// model's channels: a model with other channels has its own cohort, and the rows of the
// previous one come back with it.
import { names } from './catalogue.js';

const KEY = 'seglrp-cohort-v1';
// `note`: why a row's share cells are empty; `non_finite_voxels`: NaN/Inf voxels set to 0.
const columns = () => [
  'study',
  'region',
  'class',
  'composite',
  'voxels',
  'left_out',
  'conservation',
  ...names.sequences,
  'note',
  'non_finite_voxels',
];

export class Cohort {
  /** `channels`: the model's channel names; null for the liver model's six sequences. */
  constructor(channels = null) {
    this.key = channels ? `${KEY}:${channels.join('|')}` : KEY;
    try {
      this.rows = JSON.parse(localStorage.getItem(this.key) || '[]');
    } catch {
      this.rows = [];
    }
  }

  save() {
    try {
      localStorage.setItem(this.key, JSON.stringify(this.rows));
    } catch {
      /* storage full or off: the page still has them */
    }
  }

  /** Adds a row, replacing the one of the same study, region, class and composite. */
  add(row) {
    const key = (r) => [r.study, r.region, r.class, r.composite].join('\u0000');
    const i = this.rows.findIndex((r) => key(r) === key(row));
    if (i >= 0) this.rows[i] = row;
    else this.rows.push(row);
    this.save();
  }

  clear() {
    this.rows = [];
    this.save();
  }

  /**
   * RFC 4180 CSV: one row per patient and region, the channels' shares (fractions of positive
   * relevance); a row without shares leaves those cells empty and says why in `note`.
   */
  csv() {
    const cell = (v) => {
      const s = typeof v === 'number' ? String(v) : String(v ?? '');
      return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    const lines = [columns().map(cell).join(',')];
    for (const r of this.rows) {
      const shares = r.shares ?? names.sequences.map(() => '');
      const note = r.shares ? '' : (r.note ?? 'no positive relevance');
      lines.push(
        [
          r.study,
          r.region,
          r.class,
          r.composite,
          r.voxels,
          r.left_out ?? '',
          r.conservation ?? '',
          ...shares,
          note,
          r.non_finite ?? 0,
        ]
          .map(cell)
          .join(','),
      );
    }
    return `${lines.join('\r\n')}\r\n`;
  }
}
