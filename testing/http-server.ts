// A local HTTP server for tests: serves a folder with Range support on 127.0.0.1, and can misbehave on
// purpose (ignore Range, answer an error status, drop the connection mid-file) per path.
import { createReadStream, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export type Misbehaviour = 'ignore-range' | 'status-404' | 'status-500' | 'drop-mid-file';

export interface TestServer {
  url: string;
  /** Paths requested so far (with their Range header). */
  requests: { path: string; range?: string }[];
  misbehave: Map<string, Misbehaviour>;
  close(): Promise<void>;
}

export async function serveFolder(root: string): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  const misbehave = new Map<string, Misbehaviour>();
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push({ path, range: req.headers.range });
    const mode = [...misbehave].find(([p]) => path.endsWith(p))?.[1];
    if (mode === 'status-404') return void res.writeHead(404).end('not found');
    if (mode === 'status-500') return void res.writeHead(500).end('boom');
    let size: number;
    const file = join(root, path);
    try {
      const st = statSync(file);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      return void res.writeHead(404).end('not found');
    }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const headers: Record<string, string | number> = { 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' };
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (m && mode !== 'ignore-range') {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size) return void res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = end - start + 1;
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
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    misbehave,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
