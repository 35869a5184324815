// A static file server for the demo page (127.0.0.1 only). `npm start` runs it;
// the end-to-end test imports `serve` to get a server on a free port.
import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.gz': 'application/gzip',
  '.nii': 'application/octet-stream',
  '.png': 'image/png',
};
// Only what the page needs is served: not the sources, tests or build folders.
const PUBLIC = [
  /^\/$/,
  /^\/index\.html$/,
  /^\/bench\.html$/,
  /^\/sw\.js$/,
  /^\/www\//,
  /^\/node_modules\/@niivue\/niivue\/dist\//,
];

// Cross-origin isolation: with these two headers the browser gives the page shared memory, which
// the CPU engine's threads need (www/backend.js threadPlan). Any static host can send them
// (README, "Serve it yourself"); without them the page runs the single-threaded engine.
const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** Serves the page on `host:port`; `isolated: false` leaves out the isolation headers (tests). */
export function serve(port = 8080, host = '127.0.0.1', { isolated = true } = {}) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    let p = decodeURIComponent(url.pathname);
    if (!PUBLIC.some((re) => re.test(p)) || p.includes('..')) {
      res.writeHead(404).end('not found');
      return;
    }
    if (p === '/') p = '/index.html';
    try {
      const body = await fs.readFile(path.join(ROOT, p));
      res.writeHead(200, {
        'Content-Type': TYPES[path.extname(p)] || 'application/octet-stream',
        'Cache-Control': 'no-cache',
        ...(isolated ? ISOLATION : {}),
      });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT || 8080);
  serve(port).then(
    () => console.log(`SegLRP demo: http://127.0.0.1:${port}/`),
    (e) => {
      console.error(`cannot serve on port ${port}: ${e.message}`);
      process.exit(1);
    },
  );
}
