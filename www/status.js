// The status line under the file list: what the page is doing, what went wrong and what to do,
// with a seconds counter and the engine's progress for anything slow.

const $ = (id) => document.getElementById(id);

export function status(text, { error = false, busy = false } = {}) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
  $('cancel').hidden = !busy;
}

/** `what` failed with `e` ("Cancelled." for a cancelled request). */
export function failed(what, e) {
  const cancelled = e.message === 'cancelled';
  status(cancelled ? 'Cancelled.' : `${what}: ${e.message}`, { error: !cancelled });
}

/**
 * Runs `fn` with a progress line that counts seconds, so that long steps are visibly alive;
 * `compute.progress` (the engine's last progress message) adds the pass or window count.
 * `label` may be a function that reports its own progress (the cohort's workers).
 */
export async function withProgress(compute, label, fn) {
  const t0 = performance.now();
  compute.progress = null;
  const tick = () => {
    const p = compute.progress;
    const part =
      !p || typeof label === 'function'
        ? ''
        : p.stage === 'region'
          ? ` (LRP pass ${p.done} of ${p.total} done)`
          : p.stage === 'faithfulness'
            ? ` (pass ${p.done} of ${p.total})`
            : ` (window ${p.done} of ${p.total})`;
    const prefix = typeof label === 'function' ? label() : label;
    status(`${prefix}… ${((performance.now() - t0) / 1000).toFixed(1)} s${part}`, { busy: true });
  };
  tick();
  const timer = setInterval(tick, 200);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

export const escapeHtml = (s) =>
  String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
