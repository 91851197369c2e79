// The weight cache's fallback where OPFS is missing: the Cache API. The file's bytes are stored under
// its URL by cache.put, which stores nothing if the stream fails (a short body errors the stream), so
// a half download never lands; its metadata goes under a second key written only after the stored
// size is checked (the commit point). No resuming here: an interrupted download restarts.
import { throwIfAborted } from '@ssd/tensor';
import {
  checkQuota, checkStatus, fetchOrTransient, isTransient, quotaOr, TransientError,
  type CachedFile, type CachedModel, type DownloadRequest, type EntryMeta, type Store,
} from './store.js';

const CACHE_NAME = 'ssd-weight-cache-v1';

const metaKey = (url: string) => `${url}${url.includes('?') ? '&' : '?'}ssd-cache=meta`;
const absentKey = (url: string) => `${url}${url.includes('?') ? '&' : '?'}ssd-cache=absent`;
const urlOf = (base: string, path: string) => `${base}/${path}`;

export class CacheApiStore implements Store {
  readonly kind = 'cache-api' as const;
  private constructor(private readonly cache: Cache) {}

  static async open(): Promise<CacheApiStore | null> {
    const caches = (globalThis as { caches?: CacheStorage }).caches;
    if (!caches) return null;
    try {
      return new CacheApiStore(await caches.open(CACHE_NAME));
    } catch {
      return null;
    }
  }

  private async meta(url: string): Promise<EntryMeta | null> {
    const res = await this.cache.match(metaKey(url));
    if (!res) return null;
    try {
      return (await res.json()) as EntryMeta;
    } catch {
      return null;
    }
  }

  async get(base: string, path: string): Promise<CachedFile | null> {
    const url = urlOf(base, path);
    const meta = await this.meta(url);
    if (!meta || meta.base !== base || meta.path !== path) return null;
    const res = await this.cache.match(url);
    const blob = res ? await res.blob() : null;
    if (!blob || blob.size !== meta.sizeBytes) {
      await this.remove(base, path);
      return null;
    }
    return { meta, blob };
  }

  async isAbsent(base: string, path: string): Promise<boolean> {
    return !!(await this.cache.match(absentKey(urlOf(base, path))));
  }

  async markAbsent(base: string, path: string, url: string): Promise<void> {
    await this.cache.put(absentKey(url), new Response(JSON.stringify({ base, path, url, checkedAt: new Date().toISOString() })));
  }

  async remove(base: string, path: string): Promise<void> {
    const url = urlOf(base, path);
    await this.cache.delete(metaKey(url));
    await this.cache.delete(url);
    await this.cache.delete(absentKey(url));
  }

  async download(req: DownloadRequest): Promise<CachedFile> {
    await this.remove(req.base, req.path);
    const what = `caching ${req.url}`;
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(req.signal, `downloading ${req.url}`);
      let total = NaN;
      try {
        const res = await fetchOrTransient(req, { headers: req.headers });
        checkStatus(res, req);
        const len = res.headers.get('content-length');
        total = len === null ? NaN : Number(len);
        if (Number.isFinite(total)) await checkQuota(total, what);
        let received = 0;
        req.onBytes(0, total);
        const counter = new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, ctl) {
            received += chunk.length;
            req.onBytes(received, total);
            ctl.enqueue(chunk);
          },
          flush(ctl) {
            if (Number.isFinite(total) && received < total) ctl.error(new TransientError(`${req.url}: the connection closed after ${received} of ${total} bytes`));
          },
        });
        const body = res.body!.pipeThrough(counter);
        try {
          await this.cache.put(req.url, new Response(body, { headers: { 'content-type': 'application/octet-stream' } }));
        } catch (e) {
          if (req.signal?.aborted) throw e;
          const q = quotaOr(e, total, what);
          if (q !== e) throw q;
          throw e instanceof TransientError ? e : new TransientError(`${req.url}: the download failed after ${received} bytes (${(e as Error).message})`, { cause: e });
        }
        const stored = await (await this.cache.match(req.url))?.blob();
        if (!stored || stored.size !== received) {
          await this.cache.delete(req.url);
          throw new TransientError(`${req.url}: stored ${stored?.size ?? 0} bytes, received ${received}`);
        }
        const meta: EntryMeta = {
          base: req.base, path: req.path, url: req.url, sizeBytes: received,
          etag: res.headers.get('etag'), lastModified: res.headers.get('last-modified'), storedAt: new Date().toISOString(),
        };
        await this.cache.put(metaKey(req.url), new Response(JSON.stringify(meta), { headers: { 'content-type': 'application/json' } }));
        return { meta, blob: stored };
      } catch (e) {
        if (!isTransient(e, req.signal) || attempt >= req.retries) throw quotaOr(e, total, what);
      }
    }
  }

  async list(): Promise<CachedModel[]> {
    const models = new Map<string, CachedModel>();
    for (const req of await this.cache.keys()) {
      if (!/[?&]ssd-cache=meta$/.test(req.url)) continue;
      const meta = (await (await this.cache.match(req))?.json().catch(() => null)) as EntryMeta | null;
      if (!meta) continue;
      let m = models.get(meta.base);
      if (!m) models.set(meta.base, (m = { base: meta.base, storage: 'cache-api', files: [], sizeBytes: 0, partialBytes: 0 }));
      m.files.push(meta);
      m.sizeBytes += meta.sizeBytes;
    }
    for (const m of models.values()) m.files.sort((a, b) => a.path.localeCompare(b.path));
    return [...models.values()];
  }

  async clear(base?: string): Promise<void> {
    for (const req of await this.cache.keys()) {
      if (base === undefined) {
        await this.cache.delete(req);
        continue;
      }
      const marker = /[?&]ssd-cache=(meta|absent)$/.exec(req.url);
      if (!marker) continue;
      const info = (await (await this.cache.match(req))?.json().catch(() => null)) as { base?: string; url?: string } | null;
      if (info?.base !== base) continue;
      await this.cache.delete(req);
      if (info.url) await this.cache.delete(info.url);
    }
  }
}
