// Offline use: after the first visit the page, its engine (wasm) and NiiVue come from this
// cache when the network (the local server) is gone. Network first, so that a rebuilt engine
// is used as soon as it is served. Only this origin's own static files are ever stored.
importScripts('./www/relaxed-simd.js');
const CACHE = 'seglrp-v5';
const ASSETS = [
  './',
  './index.html',
  './www/style.css',
  './www/app.js',
  './www/compute.js',
  './www/worker.js',
  './www/backend.js',
  './www/store.js',
  './www/status.js',
  './www/panels/files.js',
  './www/panels/file-list.js',
  './www/panels/model.js',
  './www/panels/explain.js',
  './www/panels/cohort.js',
  './www/panels/exports.js',
  './www/panels/faithfulness.js',
  './www/sequences.js',
  './www/catalogue.js',
  './www/viewer.js',
  './www/outline.js',
  './www/nifti-bytes.js',
  './www/charts.js',
  './www/cohort.js',
  './www/pool.js',
  './www/relaxed-simd.js',
  './www/pkg/seglrp.js',
  './www/pkg/seglrp_bg.wasm',
  // The threaded CPU engine (cross-origin isolated pages) in the build this browser runs
  // (backend.js engineModule); its worker helper is cached on use.
  ...(self.seglrpRelaxedSimd()
    ? ['./www/pkg-threads-relaxed/seglrp.js', './www/pkg-threads-relaxed/seglrp_bg.wasm']
    : ['./www/pkg-threads/seglrp.js', './www/pkg-threads/seglrp_bg.wasm']),
  './node_modules/@niivue/niivue/dist/index.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll(ASSETS))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((c) => c.put(event.request, copy));
        }
        return response;
      })
      .catch(() => caches.match(event.request, { ignoreSearch: true }).then((hit) => hit || Response.error())),
  );
});
