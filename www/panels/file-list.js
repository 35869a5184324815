// The list of loaded files (a DICOM series is one entry): what each is, the sequence it was
// assigned (editable), and why a file could not be read.
import { names } from '../catalogue.js';
import { escapeHtml } from '../status.js';

const describe = (info) => {
  const dims = info.dims.join('×');
  const order = info.little_endian ? '' : ', big-endian';
  const pair = info.pair ? ' pair' : '';
  const extra = info.non_finite ? `, ${info.non_finite} NaN/Inf voxels set to 0` : '';
  // What the reader worked around (ignored bytes, a geometry field passed over): warnings.
  const notes = (info.notes ?? []).map((n) => `; warning: ${n}`).join('');
  return `${info.format}${pair}, ${info.datatype}${order}, ${dims}, ${info.orientation}${extra}${notes}`;
};

/**
 * Fills the reference-grid menu (`select`, inside `label`): the finest grid, or a channel's;
 * offered where the model reads several channels from separate files. `onGrid(channel)` on a
 * change ('' = the finest).
 */
export function renderGrid(label, select, { offered, channels, chosen }, onGrid) {
  label.hidden = !offered;
  select.innerHTML = [['', 'the finest of the channels'], ...channels.map((c) => [c, c])]
    .map(([v, t]) => `<option value="${escapeHtml(v)}"${v === chosen ? ' selected' : ''}>${escapeHtml(t)}</option>`)
    .join('');
  select.onchange = () => onGrid(select.value);
}

/** Renders `reports` (from open_files) into `table`; `onRole(name, role)` on a change. */
export function renderFiles(table, reports, onRole) {
  table.hidden = reports.length === 0;
  table.innerHTML = '<tr><th>file</th><th>contents</th><th>used as</th></tr>';
  for (const r of reports) {
    const tr = document.createElement('tr');
    const name = document.createElement('td');
    name.textContent = r.name;
    const what = document.createElement('td');
    const role = document.createElement('td');
    if (r.error) {
      // Set aside (a scout, a DICOMDIR beside the series): said, but no obstacle to the study.
      what.textContent = r.aside ? `set aside: ${r.error}` : r.error;
      what.className = r.aside ? 'warning' : 'error';
      role.textContent = '—';
    } else {
      what.textContent = describe(r.info);
      if (r.info.notes?.length) what.className = 'warning';
      const sel = document.createElement('select');
      sel.setAttribute('aria-label', `role of ${r.name}`);
      sel.dataset.file = r.name;
      sel.innerHTML = names.roles.map((x) => `<option${x === r.role ? ' selected' : ''}>${x}</option>`).join('');
      sel.addEventListener('change', () => onRole(r.name, sel.value));
      role.append(sel);
    }
    tr.append(name, what, role);
    table.append(tr);
  }
}
