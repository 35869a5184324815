// The page's state, declared in one place: every panel reads and writes these fields and
// nothing else; `withBusy` is the one guard for work that must not overlap.

/** The fields of one study, as they are before any file is read (and after **Clear files**). */
const noStudy = () => ({
  /** The study's files as read (`[{name, bytes, size}]`) and the user's role corrections. */
  files: [],
  roles: {},
  /** The channel whose grid the study takes ('' = the finest of them). */
  grid: '',
  /** The engine's report per file (`[{name, role, info, error}]`). */
  reports: [],
  /** The loaded study (`{dims, affine, channels: Float32Array[], label?, …}`) or null. */
  study: null,
  /** What the viewer shows: a study or one file's preview (`{dims, channels, names, label}`). */
  view: null,
  /** The segmentation (class index per voxel). */
  mask: null,
  /** The study's name in the cohort and in exported file names. */
  name: null,
  /** The last explanation (web.rs explain / explain_region, with what it explained). */
  explanation: null,
  /** The faithfulness measured for it (`{explanation, result}`: web.rs faithfulness) or null. */
  faithfulness: null,
});

export const store = {
  ...noStudy(),
  /** Work in progress: other requests are turned away, a click is queued (`queued`). */
  busy: false,
  queued: null,
  /** The running cohort (`{cancelled, pool}`) or null. */
  cohortRun: null,
  /** The model in use as the catalogue describes it (`{name, card, liver, …}`). */
  model: null,
  /** Where the network runs ("webgpu", "cpu (flex)"), and why the page chose it. */
  backend: null,
  backendWhy: null,
  /** Set at start: the compute worker, the viewer and the cohort's rows. */
  compute: null,
  viewer: null,
  cohort: null,
};

/** Forgets the study: its files, roles, grid, segmentation and explanation. */
export const clearStudy = () => Object.assign(store, noStudy());

const listeners = [];

/** Calls `fn` whenever busy work ends (buttons follow the new state). */
export function onSettled(fn) {
  listeners.push(fn);
}

/** Any listener, at once (after a change that was not busy work). */
export function settled() {
  for (const fn of listeners) fn();
}

/**
 * Runs `work` as the page's one busy task: while it runs, other requests are turned away (or,
 * for a click, queued by the explain panel); afterwards the buttons follow the new state.
 */
export async function withBusy(work) {
  store.busy = true;
  try {
    return await work();
  } finally {
    store.busy = false;
    settled();
  }
}
