// CachedUrlSource: a diffusers folder at a URL base (e.g. https://huggingface.co/segmind/SSD-1B/
// resolve/main) whose files are downloaded once into the browser's Origin Private File System (or,
// without it, the Cache API) and read back from there with random access, never again from the
// network. Entries are keyed by URL and record size and ETag; a download goes to a temporary entry
// and is committed only after its size checks out, so an interrupted one is resumed (OPFS) or
// restarted (Cache API) and never used half-written. Importing this in Node does nothing; there the
// source reads straight from the network like UrlSource.
import { BlobSource, UrlSource, type ByteSource, type HttpOptions, type ModelSource } from '@ssd/tensor';
import { CacheApiStore } from './cache-api-store.js';
import { OpfsStore } from './opfs-store.js';
import { MissingFileError, type CachedFile, type CachedModel, type Store, type StorageKind } from './store.js';

export interface CacheProgress {
  path: string;
  url: string;
  loadedBytes: number;
  /** NaN while the server has not said. */
  totalBytes: number;
  /** 'cached': served from the cache, nothing downloaded; 'download': bytes arriving; 'done': committed. */
  state: 'cached' | 'download' | 'done';
}

export interface CachedUrlSourceOptions extends HttpOptions {
  /** 'auto' (default): OPFS, else the Cache API, else none; 'none' reads from the network uncached. */
  storage?: 'auto' | StorageKind | 'none';
  /** Ask the server (HEAD) whether each cached file changed (size or ETag) and download it again if so. */
  revalidate?: boolean;
  onProgress?: (p: CacheProgress) => void;
  /** Stops downloads (the partial file is kept for resuming where the storage allows). */
  signal?: AbortSignal;
}

export class CachedUrlSource implements ModelSource {
  readonly base: string;
  private readonly http: UrlSource;
  private readonly storePromise: Promise<Store | null>;
  private readonly inflight = new Map<string, Promise<CachedFile>>();

  constructor(
    base: string,
    private readonly options: CachedUrlSourceOptions = {},
  ) {
    this.base = base.replace(/\/+$/, '');
    this.http = new UrlSource(this.base, options);
    this.storePromise = openStore(options.storage ?? 'auto');
  }

  get description(): string {
    return this.base;
  }

  url(path: string): string {
    return `${this.base}/${path}`;
  }

  /** Where files are kept: 'opfs', 'cache-api', or 'none' (no storage here: every read is a download). */
  async storage(): Promise<StorageKind | 'none'> {
    return (await this.storePromise)?.kind ?? 'none';
  }

  async exists(path: string): Promise<boolean> {
    const store = await this.storePromise;
    if (!store) return this.http.exists(path);
    if (await store.get(this.base, path)) return true;
    if (!this.options.revalidate && (await store.isAbsent(this.base, path))) return false;
    const head = await this.head(path);
    if (head === 'missing') await store.markAbsent(this.base, path, this.url(path));
    return head !== 'missing' && head !== 'unreachable';
  }

  async readText(path: string): Promise<string> {
    if (!(await this.storePromise)) return this.http.readText(path);
    return (await this.file(path)).blob.text();
  }

  async open(path: string): Promise<ByteSource> {
    if (!(await this.storePromise)) return this.http.open(path);
    return new BlobSource((await this.file(path)).blob, this.url(path));
  }

  /** The committed entry, downloading it first when needed (one download per path at a time). */
  private file(path: string): Promise<CachedFile> {
    let p = this.inflight.get(path);
    if (!p) {
      p = this.fetchFile(path).finally(() => this.inflight.delete(path));
      this.inflight.set(path, p);
    }
    return p;
  }

  private async fetchFile(path: string): Promise<CachedFile> {
    const store = (await this.storePromise)!;
    const url = this.url(path);
    const report = (loadedBytes: number, totalBytes: number, state: CacheProgress['state']) => this.options.onProgress?.({ path, url, loadedBytes, totalBytes, state });
    let cached = await store.get(this.base, path);
    if (cached && this.options.revalidate) {
      const head = await this.head(path);
      if (typeof head === 'object' && (head.sizeBytes !== cached.meta.sizeBytes || (head.etag && cached.meta.etag && head.etag !== cached.meta.etag))) cached = null;
    }
    if (cached) {
      report(cached.meta.sizeBytes, cached.meta.sizeBytes, 'cached');
      return cached;
    }
    let f: CachedFile;
    try {
      f = await store.download({
        base: this.base, path, url,
        fetch: this.options.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a)),
        headers: this.options.headers ?? {},
        retries: this.options.retries ?? 3,
        signal: this.options.signal,
        onBytes: (loaded, total) => report(loaded, total, 'download'),
      });
    } catch (e) {
      if (e instanceof MissingFileError) await store.markAbsent(this.base, path, url);
      throw e;
    }
    report(f.meta.sizeBytes, f.meta.sizeBytes, 'done');
    return f;
  }

  /** HEAD: the file's size and ETag, 'missing' on a 404, 'unreachable' when the request failed. */
  private async head(path: string): Promise<{ sizeBytes: number; etag: string | null } | 'missing' | 'unreachable'> {
    const fetchImpl = this.options.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
    try {
      let res = await fetchImpl(this.url(path), { method: 'HEAD', headers: this.options.headers, signal: this.options.signal });
      if (res.status === 405) {
        res = await fetchImpl(this.url(path), { headers: { ...this.options.headers, Range: 'bytes=0-0' }, signal: this.options.signal });
        await res.body?.cancel().catch(() => {});
      }
      if (res.status === 404) return 'missing';
      if (!res.ok) return 'unreachable';
      const range = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
      return { sizeBytes: Number(range?.[1] ?? res.headers.get('content-length') ?? NaN), etag: res.headers.get('etag') };
    } catch {
      return 'unreachable';
    }
  }
}

async function openStore(kind: CachedUrlSourceOptions['storage']): Promise<Store | null> {
  if (kind === 'none') return null;
  if (kind === 'opfs' || kind === 'auto') {
    const s = await OpfsStore.open();
    if (s || kind === 'opfs') return s;
  }
  return CacheApiStore.open();
}

async function stores(): Promise<Store[]> {
  return (await Promise.all([OpfsStore.open(), CacheApiStore.open()])).filter((s): s is OpfsStore | CacheApiStore => s !== null);
}

/** Every cached model (both storages), with its files and sizes; [] where there is no storage (Node). */
export async function listCachedModels(): Promise<CachedModel[]> {
  const out: CachedModel[] = [];
  for (const s of await stores()) out.push(...(await s.list()));
  return out;
}

/** Deletes one model's cached files (by its URL base, as listed), or every cached model. */
export async function clearCachedModels(base?: string): Promise<void> {
  for (const s of await stores()) await s.clear(base?.replace(/\/+$/, ''));
}

/** The storage a CachedUrlSource with storage 'auto' would use here. */
export async function weightCacheStorage(): Promise<StorageKind | 'none'> {
  return (await openStore('auto'))?.kind ?? 'none';
}
