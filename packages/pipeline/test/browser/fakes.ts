// Browser stand-ins for testing the weight cache in Node: an in-memory Origin Private File System
// (directory and file handles, writable streams that commit on close, move) and a fetch over an
// in-memory file table that can drop connections, ignore Range, change a file's ETag, and counts
// requests. Real OPFS (sync access handles in a worker) is exercised by examples/browser's tests.

class NotFound extends Error {
  override name = 'NotFoundError';
}

export class FakeFile {
  readonly kind = 'file';
  constructor(
    public name: string,
    public data: Uint8Array,
    private parent: FakeDir,
  ) {}
  async getFile(): Promise<File> {
    return new File([this.data.slice() as Uint8Array<ArrayBuffer>], this.name);
  }
  async createWritable(o: { keepExistingData?: boolean } = {}) {
    let swap = o.keepExistingData ? this.data.slice() : new Uint8Array(0);
    let pos = 0;
    const put = (bytes: Uint8Array, at: number) => {
      if (at + bytes.length > swap.length) {
        const grown = new Uint8Array(at + bytes.length);
        grown.set(swap);
        swap = grown;
      }
      swap.set(bytes, at);
      pos = at + bytes.length;
    };
    return {
      write: async (d: string | Uint8Array | { type: 'write'; position: number; data: Uint8Array }) => {
        if (typeof d === 'string') put(new TextEncoder().encode(d), pos);
        else if (d instanceof Uint8Array) put(d, pos);
        else put(d.data, d.position);
      },
      truncate: async (n: number) => {
        const t = new Uint8Array(n);
        t.set(swap.subarray(0, Math.min(n, swap.length)));
        swap = t;
        pos = Math.min(pos, n);
      },
      close: async () => {
        this.data = swap; // the swap file replaces the content only now, as in browsers
      },
      abort: async () => {},
    };
  }
  async move(name: string): Promise<void> {
    this.parent.children.delete(this.name);
    this.parent.children.delete(name);
    this.name = name;
    this.parent.children.set(name, this);
  }
}

export class FakeDir {
  readonly kind = 'directory';
  readonly children = new Map<string, FakeDir | FakeFile>();
  constructor(readonly name: string) {}
  async getDirectoryHandle(name: string, o: { create?: boolean } = {}): Promise<FakeDir> {
    let c = this.children.get(name);
    if (!c) {
      if (!o.create) throw new NotFound(name);
      this.children.set(name, (c = new FakeDir(name)));
    }
    if (!(c instanceof FakeDir)) throw new TypeError(`${name} is a file`);
    return c;
  }
  async getFileHandle(name: string, o: { create?: boolean } = {}): Promise<FakeFile> {
    let c = this.children.get(name);
    if (!c) {
      if (!o.create) throw new NotFound(name);
      this.children.set(name, (c = new FakeFile(name, new Uint8Array(0), this)));
    }
    if (!(c instanceof FakeFile)) throw new TypeError(`${name} is a directory`);
    return c;
  }
  async removeEntry(name: string): Promise<void> {
    if (!this.children.delete(name)) throw new NotFound(name);
  }
  async *entries(): AsyncGenerator<[string, FakeDir | FakeFile]> {
    for (const e of [...this.children]) yield e;
  }
  /** Every file below, by path (for assertions). */
  files(prefix = ''): Map<string, FakeFile> {
    const out = new Map<string, FakeFile>();
    for (const [n, c] of this.children) {
      if (c instanceof FakeFile) out.set(prefix + n, c);
      else for (const [p, f] of c.files(`${prefix}${n}/`)) out.set(p, f);
    }
    return out;
  }
}

/** Installs navigator.storage (getDirectory, estimate) with a fresh fake OPFS; returns its root. */
export function installFakeOpfs(quotaBytes = 1 << 30): { root: FakeDir; uninstall(): void } {
  const top = new FakeDir('');
  const usage = () => [...top.files().values()].reduce((a, f) => a + f.data.length, 0);
  const storage = { getDirectory: async () => top, estimate: async () => ({ quota: quotaBytes, usage: usage() }) };
  Object.defineProperty(globalThis, 'navigator', { value: { storage }, configurable: true, writable: true });
  return { root: top, uninstall: () => void delete (globalThis as { navigator?: unknown }).navigator };
}

export interface FakeServerFile {
  data: Uint8Array;
  etag?: string;
}

export interface FakeServer {
  fetch: typeof fetch;
  files: Map<string, FakeServerFile>;
  requests: { url: string; method: string; range?: string }[];
  /** Per URL: each response body errors after this many bytes. */
  dropAfter: Map<string, number>;
  ignoreRange: boolean;
}

/** A fetch over an in-memory file table: HEAD, Range (206 with Content-Range), ETag, 404, drops. */
export function fakeServer(files: Record<string, FakeServerFile>): FakeServer {
  const s: FakeServer = { files: new Map(Object.entries(files)), requests: [], dropAfter: new Map(), ignoreRange: false, fetch: null as never };
  s.fetch = (async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = String(input);
    const headers = new Headers(init.headers);
    const method = init.method ?? 'GET';
    s.requests.push({ url, method, range: headers.get('range') ?? undefined });
    const f = s.files.get(url);
    if (!f) return new Response('not found', { status: 404 });
    const size = f.data.length;
    const h: Record<string, string> = { 'accept-ranges': 'bytes' };
    if (f.etag) h.etag = f.etag;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(headers.get('range') ?? '');
    if (m && !s.ignoreRange) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size) return new Response(null, { status: 416, headers: { 'content-range': `bytes */${size}` } });
      status = 206;
      h['content-range'] = `bytes ${start}-${end}/${size}`;
    }
    h['content-length'] = String(end - start + 1);
    if (method === 'HEAD') return new Response(null, { status, headers: h });
    const body = f.data.slice(start, end + 1);
    const drop = s.dropAfter.get(url);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (drop !== undefined && sent >= drop) return ctl.error(new TypeError('network error (connection dropped)'));
        if (sent >= body.length) return ctl.close();
        const n = Math.min(1000, body.length - sent, drop !== undefined ? drop - sent : Infinity);
        ctl.enqueue(body.slice(sent, sent + n));
        sent += n;
      },
    });
    return new Response(stream, { status, headers: h });
  }) as typeof fetch;
  return s;
}

/** Installs a CacheStorage (globalThis.caches) in memory; put() consumes the body and fails if it errors. */
export function installFakeCaches(): { entries: Map<string, Map<string, { body: Uint8Array; headers: Headers; status: number }>>; uninstall(): void } {
  const entries = new Map<string, Map<string, { body: Uint8Array; headers: Headers; status: number }>>();
  const keyOf = (r: RequestInfo | URL) => String(r instanceof Request ? r.url : r);
  const open = async (name: string) => {
    let m = entries.get(name);
    if (!m) entries.set(name, (m = new Map()));
    const store = m;
    return {
      match: async (r: RequestInfo | URL) => {
        const e = store.get(keyOf(r));
        return e ? new Response(e.body.slice() as Uint8Array<ArrayBuffer>, { status: e.status, headers: e.headers }) : undefined;
      },
      put: async (r: RequestInfo | URL, res: Response) => {
        const body = new Uint8Array(await res.arrayBuffer()); // rejects when the stream errors: nothing stored
        store.set(keyOf(r), { body, headers: res.headers, status: res.status });
      },
      delete: async (r: RequestInfo | URL) => store.delete(keyOf(r)),
      keys: async () => [...store.keys()].map((u) => new Request(u)),
    };
  };
  Object.defineProperty(globalThis, 'caches', { value: { open }, configurable: true, writable: true });
  return { entries, uninstall: () => void delete (globalThis as { caches?: unknown }).caches };
}
