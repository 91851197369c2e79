// What the weight cache's two storage back ends (Origin Private File System, Cache API) share: the
// entry metadata, the store interface, the typed quota error, content hashing for entry names and
// the HTTP plumbing of a download (status checks, Content-Range parsing, a quota check up front).
import { ModelLoadError, SsdError } from '@ssd/tensor';

/** A committed cache entry: one file of one model, complete and size-checked. */
export interface EntryMeta {
  /** The model's URL base, as given to CachedUrlSource. */
  base: string;
  /** Model-relative path ("unet/diffusion_pytorch_model.fp16.safetensors"). */
  path: string;
  url: string;
  sizeBytes: number;
  /** The server's ETag (or null when it sent none); a changed ETag or size means a new file. */
  etag: string | null;
  lastModified: string | null;
  /** ISO date of the commit. */
  storedAt: string;
}

export interface CachedFile {
  meta: EntryMeta;
  /** The file's bytes, read lazily (a disk-backed File or Blob). */
  blob: Blob;
}

/** Bytes arrived for a download: `loadedBytes` of `totalBytes` (NaN when the server sent no size). */
export type BytesCallback = (loadedBytes: number, totalBytes: number) => void;

export interface DownloadRequest {
  base: string;
  path: string;
  url: string;
  fetch: typeof fetch;
  headers: Record<string, string>;
  /** Resumes after a dropped connection (OPFS: also after a reload); default 3. */
  retries: number;
  onBytes: BytesCallback;
  signal?: AbortSignal;
}

export interface CachedModel {
  base: string;
  storage: StorageKind;
  files: EntryMeta[];
  /** Sum of the committed files. */
  sizeBytes: number;
  /** Bytes of interrupted downloads kept for resuming (OPFS only). */
  partialBytes: number;
}

export type StorageKind = 'opfs' | 'cache-api';

export interface Store {
  readonly kind: StorageKind;
  /** The committed entry, or null (a stale or half-written one is never returned). */
  get(base: string, path: string): Promise<CachedFile | null>;
  /** True when a previous HEAD answered 404 for this path. */
  isAbsent(base: string, path: string): Promise<boolean>;
  markAbsent(base: string, path: string, url: string): Promise<void>;
  /** Downloads into a temporary entry, verifies the size, then commits; throws leaving no committed entry. */
  download(req: DownloadRequest): Promise<CachedFile>;
  remove(base: string, path: string): Promise<void>;
  list(): Promise<CachedModel[]>;
  /** One model's entries (by base), or everything. */
  clear(base?: string): Promise<void>;
}

/** The browser's storage quota would be (or was) exceeded by a download. */
export class StorageQuotaError extends SsdError {
  constructor(
    readonly neededBytes: number,
    readonly availableBytes: number,
    detail: string,
  ) {
    super(
      'STORAGE_QUOTA',
      `${detail}: the browser's storage quota is exhausted (needs ${fmtBytes(neededBytes)}, ${fmtBytes(availableBytes)} free for this site). ` +
        'Clear cached models you no longer need, free disk space, or load without the cache (weights are then downloaded again on every load).',
    );
  }
}

export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return 'an unknown amount';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

/** A short stable name for a string (entry and folder names): 16 hex digits of its SHA-256. */
export async function shortHash(s: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));
  return [...new Uint8Array(digest).slice(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Throws StorageQuotaError when the origin's free quota is below `bytes` (plus 1% slack). */
export async function checkQuota(bytes: number, what: string): Promise<void> {
  const storage = (globalThis as { navigator?: { storage?: StorageManager } }).navigator?.storage;
  if (!Number.isFinite(bytes) || !storage?.estimate) return;
  const { quota, usage } = await storage.estimate();
  if (quota === undefined || usage === undefined) return;
  const free = quota - usage;
  if (bytes * 1.01 > free) throw new StorageQuotaError(bytes, free, what);
}

/** Maps a write failure to StorageQuotaError when the browser says the quota ran out. */
export function quotaOr(e: unknown, needed: number, what: string): unknown {
  const name = (e as { name?: string })?.name;
  if (name === 'QuotaExceededError') return new StorageQuotaError(needed, 0, what);
  return e;
}

/** The total size from a 206's Content-Range ("bytes 0-9/1234") and the range's start. */
export function parseContentRange(header: string | null): { start: number; total: number } | null {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header?.trim() ?? '');
  if (!m) return null;
  return { start: Number(m[1]), total: m[2] === '*' ? NaN : Number(m[2]) };
}

/** A response status that ends the download for good: a missing file names its URL and path. */
export function checkStatus(res: Response, req: DownloadRequest): void {
  if (res.status === 404) throw new MissingFileError(`file not found: ${req.url} (HTTP 404) — the model folder has no ${req.path}`);
  if (res.status === 401 || res.status === 403) {
    throw new RefusedError(`${req.url}: HTTP ${res.status} — the server refused access (a gated or private model needs a token; this page can only read public files)`);
  }
  if (!res.ok && res.status !== 416) throw new ModelLoadError(`${req.url}: HTTP ${res.status} ${res.statusText}`);
}

/** Whether a failed fetch or body read is worth retrying (a dropped connection, a 5xx), not an abort. */
export function isTransient(e: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return false;
  if (e instanceof SsdError) return e instanceof TransientError;
  return true; // TypeError "network error", body stream errors
}

export class TransientError extends ModelLoadError {}
/** The server has no such file (404): the download leaves nothing behind and the path is remembered. */
export class MissingFileError extends ModelLoadError {}
/** The server refused access (401/403). */
export class RefusedError extends ModelLoadError {}

export async function fetchOrTransient(req: DownloadRequest, init: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await req.fetch(req.url, { ...init, signal: req.signal });
  } catch (e) {
    if (req.signal?.aborted) throw e;
    throw new TransientError(`${req.url}: request failed (${(e as Error).message})`, { cause: e });
  }
  if (res.status >= 500) {
    await res.body?.cancel().catch(() => {});
    throw new TransientError(`${req.url}: server error ${res.status} ${res.statusText}`);
  }
  return res;
}
