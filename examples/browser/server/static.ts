// A small static file handler (Node) for the demo's model files and its tests: Range requests,
// ETag and Last-Modified, the right Content-Type for the built page, a request log, and deliberate
// misbehaviour per path (404, dropped connection) for the cache tests. Used by vite.config.ts to serve
// the bundled tiny model at /models/ and by test/ to serve the built page on 127.0.0.1.
import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

export type Misbehaviour = 'status-404' | 'drop-mid-file';

export interface RequestRecord {
  method: string;
  path: string;
  range?: string;
  status: number;
}

export interface StaticHandler {
  (req: IncomingMessage, res: ServerResponse, next?: () => void): void;
  requests: RequestRecord[];
  /** Path suffix → misbehaviour (matched against the request path's end). */
  misbehave: Map<string, Misbehaviour>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.wasm': 'application/wasm',
};

/**
 * Serves `mounts` (URL prefix → folder; '/' for the root). A missing file under a mount is a 404 (a
 * model folder must say what it lacks); paths outside every mount, or missing under '/', go to `next`.
 */
export function staticHandler(mounts: Record<string, string>): StaticHandler {
  const prefixes = Object.entries(mounts).sort((a, b) => b[0].length - a[0].length);
  const requests: RequestRecord[] = [];
  const misbehave = new Map<string, Misbehaviour>();
  const handler = ((req: IncomingMessage, res: ServerResponse, next?: () => void) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const mount = prefixes.find(([p]) => path.startsWith(p));
    const record = (status: number) => requests.push({ method: req.method ?? 'GET', path, range: req.headers.range, status });
    if (!mount) return next ? next() : (record(404), void res.writeHead(404).end('not found'));
    const rel = path.slice(mount[0].length) || 'index.html';
    const file = normalize(join(mount[1], rel));
    if (!file.startsWith(normalize(mount[1]) + sep) && file !== normalize(mount[1])) return record(403), void res.writeHead(403).end();
    let size: number;
    let mtime: Date;
    try {
      const st = statSync(file);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
      mtime = st.mtime;
    } catch {
      if (next && mount[0] === '/') return next(); // under the root the dev server may know the path
      record(404);
      return void res.writeHead(404).end('not found');
    }
    const mode = [...misbehave].find(([p]) => path.endsWith(p))?.[1];
    if (mode === 'status-404') return record(404), void res.writeHead(404).end('not found');
    const etag = `"${size.toString(16)}-${Math.floor(mtime.getTime()).toString(16)}"`;
    const headers: Record<string, string | number> = {
      'Accept-Ranges': 'bytes',
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      ETag: etag,
      'Last-Modified': mtime.toUTCString(),
      'Cache-Control': 'no-cache',
      'Access-Control-Allow-Origin': '*',
      'Access-Control-Expose-Headers': 'Content-Range, Content-Length, ETag, Accept-Ranges',
    };
    let start = 0;
    let end = size - 1;
    let status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size) return record(416), void res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = end - start + 1;
    record(status);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();
    if (mode === 'drop-mid-file' && end - start > 16) {
      const half = start + Math.floor((end - start) / 2);
      const s = createReadStream(file, { start, end: half });
      s.pipe(res, { end: false });
      s.on('end', () => res.destroy());
      return;
    }
    createReadStream(file, { start, end }).pipe(res);
  }) as StaticHandler;
  handler.requests = requests;
  handler.misbehave = misbehave;
  return handler;
}

export interface StaticServer {
  url: string;
  handler: StaticHandler;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 (a free port) for `mounts`. */
export async function serveStatic(mounts: Record<string, string>): Promise<StaticServer> {
  const handler = staticHandler(mounts);
  const server: Server = createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    handler,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
