// Display windows of the sequences' images (their names come from catalogue.js).

/**
 * Robust display window of one channel (2nd..98th percentile of its non-zero voxels), from at
 * most 200 000 evenly spaced samples so that large volumes do not stall the page.
 */
export function windowOf(channel) {
  const step = Math.max(1, Math.floor(channel.length / 200_000));
  const v = [];
  for (let i = 0; i < channel.length; i += step) if (channel[i] !== 0) v.push(channel[i]);
  v.sort((a, b) => a - b);
  if (v.length === 0) return [0, 1];
  const lo = v[Math.floor(v.length * 0.02)],
    hi = v[Math.floor(v.length * 0.98)];
  return [lo, hi > lo ? hi : lo + 1];
}
