// The demo cohort on several workers at once. Patients are independent (each its own study,
// forward pass and region map), so where the CPU engine is single-threaded (a page that is not
// cross-origin isolated) N cores explain N patients at a time. Where the engine runs on every
// core already, one worker goes through the patients (N workers × N threads would only fight
// over the cores and hold N studies in memory). The page's own worker is one of them and keeps
// its study; the others are started for the run and ended after it.
import { Compute } from './compute.js';

/** Memory one worker needs for a demo patient's region map (wasm peak, measured: README). */
const WORKER_GB = 1.5;

/**
 * How many workers a cohort run uses: on the single-threaded CPU engine one per core, at most
 * one per WORKER_GB of the machine's memory (where the browser tells it) and at most 8; on a
 * GPU one (the GPU is shared; a second worker would only queue on it); on the threaded CPU
 * engine (`threads` > 1) one. `asked` (the page's `?workers=N`) wins.
 */
export function poolSize(backend, { cores = 4, memoryGB = null, asked = null, threads = 1 } = {}) {
  if (asked > 0) return Math.min(8, Math.floor(asked));
  if (String(backend).startsWith('webgpu') || threads > 1) return 1;
  const byMemory = memoryGB ? Math.max(1, Math.floor(memoryGB / WORKER_GB)) : 8;
  return Math.max(1, Math.min(cores, byMemory, 8));
}

export class Pool {
  /** `main`: the page's Compute; `size`: workers in all, `main` included. */
  constructor(main, size) {
    this.main = main;
    this.size = size;
    this.extras = [];
  }

  /**
   * Starts the extra workers on the main one's backend, with its model; on the CPU the cores
   * are shared out (`cores` / workers threads each) so that the extras do not oversubscribe.
   */
  async start({ cores = 4 } = {}) {
    const backend = String(this.main.backend).startsWith('webgpu') ? 'webgpu' : 'cpu';
    const threads = Math.max(1, Math.floor(cores / this.size));
    this.extras = Array.from({ length: this.size - 1 }, () => new Compute(null, { backend, threads }));
    await Promise.all(
      this.extras.map(async (c) => {
        await c.ready;
        if (this.main.modelFiles) await c.loadModel(this.main.modelFiles);
        if (this.main.normalisation) await c.setNormalisation(this.main.normalisation);
      }),
    );
    return this;
  }

  get workers() {
    return [this.main, ...this.extras];
  }

  /**
   * Runs `fn(worker, item)` for every item, each worker taking the next item when it is free.
   * A failed item is reported through `onResult(item, null, error)` and the run goes on; a
   * worker whose engine died (kind 'fatal') is restarted first. Stops taking items once
   * `stopped()` is true.
   */
  async map(items, fn, { onResult, onStart = () => {}, stopped = () => false }) {
    const queue = [...items];
    const loop = async (worker) => {
      while (queue.length && !stopped()) {
        const item = queue.shift();
        onStart(item, worker);
        try {
          onResult(item, await fn(worker, item), null);
        } catch (e) {
          if (stopped()) return;
          onResult(item, null, e);
          if (e.kind === 'fatal') await worker.restart();
        }
      }
    };
    await Promise.all(this.workers.map(loop));
  }

  /** Ends the extra workers (the page's own stays). */
  close() {
    for (const c of this.extras) c.terminate();
    this.extras = [];
  }
}
