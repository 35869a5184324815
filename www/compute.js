// A restartable handle on the compute worker. The page keeps the study's files, so a
// cancelled request or a GPU failure costs a restart and a reload, never the user's work.

export class Compute {
  constructor(onStatus, { backend = null, threads = null } = {}) {
    this.onStatus = onStatus;
    const params = new URLSearchParams(location.search);
    this.backendPref = backend ?? (params.get('backend') || 'auto');
    // The CPU engine's threads (backend.js threadPlan): the page's ?threads=N, else every core.
    this.threadsPref = threads ?? params.get('threads');
    // ?simd=plain: the threaded engine without relaxed SIMD (backend.js engineModule).
    this.simdPref = params.get('simd');
    this.opened = null;
    this.pending = new Map();
    this.nextId = 1;
    this.start();
  }

  start() {
    this.ready = this.spawn().catch((e) => {
      if (this.backendPref !== 'auto') throw e;
      console.warn(`the WebGPU engine failed to start (${e.message}); starting the CPU engine`);
      this.backendPref = 'cpu';
      return this.spawn();
    });
    return this.ready;
  }

  /** Ends the worker; what was pending fails as cancelled. */
  terminate() {
    this.worker?.terminate();
    for (const { reject } of this.pending.values()) reject(new Error('cancelled'));
    this.pending.clear();
  }

  spawn() {
    this.terminate();
    const url = new URL('./worker.js', import.meta.url);
    url.searchParams.set('backend', this.backendPref);
    if (this.threadsPref != null) url.searchParams.set('threads', String(this.threadsPref));
    if (this.simdPref) url.searchParams.set('simd', this.simdPref);
    this.worker = new Worker(url, { type: 'module' });
    return new Promise((resolve, reject) => {
      this.worker.onmessage = ({ data }) => {
        if (data.op === 'ready') {
          this.backend = data.backend;
          this.why = data.why;
          this.threads = data.threads ?? 1;
          this.limits = data.limits;
          // The names the page shares with the engine (web.rs catalogue(), catalogue.js).
          this.catalogue = data.catalogue;
          this.onStatus?.(data);
          resolve(data.backend);
          return;
        }
        if (data.op === 'lost') {
          this.deviceLost(data);
          return;
        }
        if (data.op === 'failed') {
          reject(new Error(data.error));
          return;
        }
        // A windowed study reports each window done (web.rs progress); the page shows it.
        if (data.op === 'progress') {
          this.progress = data;
          return;
        }
        const p = this.pending.get(data.id);
        if (!p) return;
        this.pending.delete(data.id);
        if (data.ok) p.resolve(data.result);
        else p.reject(Object.assign(new Error(data.error), { kind: data.kind }));
      };
      this.worker.onerror = (e) => reject(new Error(e.message || 'the compute worker failed to start'));
    });
  }

  async call(op, args = {}) {
    await this.ready;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, ...args });
    });
  }

  /**
   * Reads files `[{name, bytes, size?}]` with role overrides `{name: role}` onto the grid of
   * channel `grid` ('' = the finest); see web.rs open_files (`size`: the file's length where
   * `bytes` is the part its header needs).
   */
  async open(files, roles = {}, grid = '') {
    // Copies: the worker takes ownership of what it is sent, the page keeps the originals.
    const send = () =>
      this.call('open', {
        files: files.map((f) => ({ name: f.name, bytes: f.bytes.slice().buffer, size: f.size ?? f.bytes.length })),
        roles,
        grid,
      });
    const result = await send();
    // What a restart must replay: the last set of files that made a study.
    if (result.study) this.opened = send;
    else if (result.files.some((f) => !f.error)) this.opened = null;
    return result;
  }

  /**
   * The user's model (`files`: `[{name, bytes: Uint8Array}]`, as dropped: web.rs load_model),
   * or the bundled one when `files` is null; returns the engine's new catalogue. Kept
   * (`modelFiles`), so that a restarted worker, or another worker of the cohort's pool, gets
   * it again.
   */
  async loadModel(files) {
    const catalogue = await this.sendModel(files);
    this.modelFiles = files;
    this.normalisation = '';
    this.opened = null;
    return catalogue;
  }

  /** Every channel normalised by scheme `name` ('' = as the model's card says); kept too. */
  async setNormalisation(name) {
    const catalogue = await this.call('normalisation', { name });
    this.normalisation = name;
    this.opened = null;
    return catalogue;
  }

  sendModel(files) {
    return this.call('loadModel', {
      files: files ? files.map((f) => ({ name: f.name, bytes: f.bytes.slice().buffer })) : null,
    });
  }

  /** Restarts the worker (and reloads the model and the study into it): used by Cancel. */
  async restart(backendPref = this.backendPref) {
    this.backendPref = backendPref;
    await this.start();
    if (this.modelFiles) await this.sendModel(this.modelFiles);
    if (this.normalisation) await this.call('normalisation', { name: this.normalisation });
    if (this.opened) await this.opened();
  }

  /**
   * The GPU was lost (driver reset, another tab, device.destroy()): whatever was asked of it
   * fails as fatal, so that run() redoes it on the CPU engine.
   */
  deviceLost({ reason, message }) {
    console.warn(`the GPU device was lost (${reason}: ${message}); moving to the CPU`);
    this.lost = true;
    for (const { reject } of this.pending.values())
      reject(Object.assign(new Error('the GPU device was lost'), { kind: 'fatal' }));
    this.pending.clear();
  }

  /** Runs `op`; if the GPU engine dies, falls back to the CPU, reloads the study and retries once. */
  async run(op, args = {}) {
    try {
      if (this.lost && this.backend?.startsWith('webgpu'))
        throw Object.assign(new Error('the GPU device was lost'), { kind: 'fatal' });
      return await this.call(op, args);
    } catch (e) {
      if (e.kind !== 'fatal' || !this.backend?.startsWith('webgpu')) throw e;
      console.warn(`WebGPU failed (${e.message}); continuing on the CPU`);
      // One restart for all the requests that failed together.
      this.switching ??= this.restart('cpu').finally(() => {
        this.switching = null;
        this.lost = false;
      });
      await this.switching;
      return this.call(op, args);
    }
  }
}
