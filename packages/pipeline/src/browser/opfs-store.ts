// The weight cache in the Origin Private File System. Layout: ssd-weight-cache/m-<hash(base)>/ holds
// model.json ({base}) and per file (id = f-<hash(path)>): <id>.part while downloading, with
// <id>.part.json (url, expected size, ETag) for resuming; then, once the size is verified, <id>.bin
// (renamed from the part) and last <id>.json, the commit: an entry without its .json, or whose .bin
// has another size, is never used. <id>.absent remembers a 404. In a dedicated worker the part is
// written through a sync access handle (in place, flushed as it goes, so a reload resumes it); on the
// main thread through a writable stream (committed when the download ends or fails).
import { ModelLoadError, throwIfAborted } from '@ssd/tensor';
import {
  checkQuota, checkStatus, fetchOrTransient, isTransient, MissingFileError, parseContentRange, quotaOr, RefusedError, shortHash, TransientError,
  type CachedFile, type CachedModel, type DownloadRequest, type EntryMeta, type Store,
} from './store.js';

const ROOT = 'ssd-weight-cache';
const FLUSH_EVERY_BYTES = 32 << 20;

interface PartMeta {
  url: string;
  sizeBytes: number | null;
  etag: string | null;
  lastModified: string | null;
}

/** What lib.dom lacks: sync access handles (workers only), move(), and directory iteration. */
interface SyncAccessHandle {
  read(buffer: Uint8Array, options?: { at?: number }): number;
  write(buffer: Uint8Array, options?: { at?: number }): number;
  truncate(size: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}
type FileHandle = FileSystemFileHandle & { createSyncAccessHandle?(): Promise<SyncAccessHandle>; move?(name: string): Promise<void> };
type DirHandle = FileSystemDirectoryHandle & { entries(): AsyncIterable<[string, FileSystemHandle]> };

export class OpfsStore implements Store {
  readonly kind = 'opfs' as const;
  private constructor(private readonly root: DirHandle) {}

  /** The store, or null where OPFS is missing (Node, old browsers) or refused (some private modes). */
  static async open(): Promise<OpfsStore | null> {
    const storage = (globalThis as { navigator?: { storage?: StorageManager } }).navigator?.storage;
    if (!storage?.getDirectory) return null;
    try {
      const top = await storage.getDirectory();
      return new OpfsStore((await top.getDirectoryHandle(ROOT, { create: true })) as DirHandle);
    } catch {
      return null;
    }
  }

  private async modelDir(base: string, create: boolean): Promise<DirHandle | null> {
    const name = `m-${await shortHash(base)}`;
    try {
      const dir = (await this.root.getDirectoryHandle(name, { create })) as DirHandle;
      if (create && !(await readJson(dir, 'model.json'))) await writeJson(dir, 'model.json', { base, createdAt: new Date().toISOString() });
      return dir;
    } catch (e) {
      if (!create && (e as Error).name === 'NotFoundError') return null;
      throw e;
    }
  }

  async get(base: string, path: string): Promise<CachedFile | null> {
    const dir = await this.modelDir(base, false);
    if (!dir) return null;
    const id = await fileId(path);
    const meta = await readJson<EntryMeta>(dir, `${id}.json`);
    if (!meta || meta.path !== path || meta.base !== base) return null;
    const file = await getFile(dir, `${id}.bin`);
    if (!file || file.size !== meta.sizeBytes) {
      await this.remove(base, path); // a commit whose data is gone or damaged: never used
      return null;
    }
    return { meta, blob: file };
  }

  async isAbsent(base: string, path: string): Promise<boolean> {
    const dir = await this.modelDir(base, false);
    return !!dir && !!(await readJson(dir, `${await fileId(path)}.absent`));
  }

  async markAbsent(base: string, path: string, url: string): Promise<void> {
    const dir = await this.modelDir(base, true);
    await writeJson(dir!, `${await fileId(path)}.absent`, { url, checkedAt: new Date().toISOString() });
  }

  async remove(base: string, path: string): Promise<void> {
    const dir = await this.modelDir(base, false);
    if (!dir) return;
    const id = await fileId(path);
    for (const n of [`${id}.json`, `${id}.bin`, `${id}.absent`]) await removeEntry(dir, n);
  }

  async download(req: DownloadRequest): Promise<CachedFile> {
    const dir = (await this.modelDir(req.base, true))!;
    const id = await fileId(req.path);
    const what = `caching ${req.url}`;
    for (const n of [`${id}.json`, `${id}.bin`, `${id}.absent`]) await removeEntry(dir, n); // stale commit or orphan data
    const partHandle = (await dir.getFileHandle(`${id}.part`, { create: true })) as FileHandle;
    const prev = await readJson<PartMeta>(dir, `${id}.part.json`);
    const w = await PartWriter.open(partHandle, req.url);
    let total = NaN;
    try {
      const resumable = prev?.url === req.url;
      let offset = resumable ? await w.size() : 0;
      if (!resumable) await w.truncate(0);
      let etag = resumable ? prev.etag : null;
      let lastModified = resumable ? prev.lastModified : null;
      total = resumable && prev.sizeBytes !== null ? prev.sizeBytes : NaN;
      let lengthIsEncoded = false;
      for (let attempt = 0; ; attempt++) {
        throwIfAborted(req.signal, `downloading ${req.url}`);
        try {
          const headers: Record<string, string> = { ...req.headers };
          // no If-Range: it is not a CORS-safelisted header (a preflight); the ETag is compared below
          if (offset > 0) headers.Range = `bytes=${offset}-`;
          const res = await fetchOrTransient(req, { headers });
          checkStatus(res, req);
          if (res.status === 416) {
            await res.body?.cancel().catch(() => {});
            if (offset > 0 && offset === total) break; // the part was already complete
            offset = await restart(w);
            throw new TransientError(`${req.url}: range ${offset}- not satisfiable; restarting`);
          }
          if (res.status === 206) {
            // Content-Range is hidden cross-origin unless exposed; then the length must add up
            const len = Number(res.headers.get('content-length') ?? NaN);
            const cr = parseContentRange(res.headers.get('content-range')) ?? (Number.isFinite(total) && offset + len === total ? { start: offset, total } : null);
            const newEtag = res.headers.get('etag');
            const changed = !!(etag && newEtag && newEtag !== etag);
            if (!cr || changed || cr.start !== offset || (Number.isFinite(total) && cr.total !== total)) {
              await res.body?.cancel().catch(() => {});
              offset = await restart(w); // another file behind the URL, or a range we did not ask for
              total = NaN;
              etag = null;
              throw new TransientError(`${req.url}: the file changed or the server answered another range; restarting`);
            }
            total = cr.total;
          } else {
            if (offset > 0) offset = await restart(w); // no Range support, or If-Range saw a new version
            const len = res.headers.get('content-length');
            total = len === null ? NaN : Number(len);
            lengthIsEncoded = false;
            etag = res.headers.get('etag');
            lastModified = res.headers.get('last-modified');
          }
          await writeJson(dir, `${id}.part.json`, { url: req.url, sizeBytes: Number.isFinite(total) ? total : null, etag, lastModified } satisfies PartMeta);
          if (Number.isFinite(total)) await checkQuota(total - offset, what);
          req.onBytes(offset, total);
          const reader = res.body!.getReader();
          let sinceFlush = 0;
          try {
            for (;;) {
              const { done, value } = await reader.read();
              if (done) break;
              await w.write(value, offset);
              offset += value.length;
              sinceFlush += value.length;
              if (sinceFlush >= FLUSH_EVERY_BYTES) {
                await w.flush();
                sinceFlush = 0;
              }
              req.onBytes(offset, total);
            }
          } catch (e) {
            await w.flush();
            if (req.signal?.aborted) throw e;
            const q = quotaOr(e, total, what);
            if (q !== e) throw q;
            throw new TransientError(`${req.url}: the connection dropped after ${offset} bytes (${(e as Error).message})`, { cause: e });
          }
          if (Number.isFinite(total) && offset < total) throw new TransientError(`${req.url}: the connection closed after ${offset} of ${total} bytes`);
          // a 200 whose Content-Length counted compressed bytes (gzip text): the body is the truth
          if (res.status === 200 && Number.isFinite(total) && offset > total) lengthIsEncoded = true;
          break;
        } catch (e) {
          if (!isTransient(e, req.signal) || attempt >= req.retries) throw e;
        }
      }
      await w.flush();
      const size = await w.size();
      await w.close();
      if (Number.isFinite(total) && size !== total && !lengthIsEncoded) {
        await removeEntry(dir, `${id}.part`); // longer than the file: not a prefix worth resuming
        await removeEntry(dir, `${id}.part.json`);
        throw new ModelLoadError(`${req.url}: downloaded ${size} bytes but the file has ${total}; the download was discarded`);
      }
      // commit: rename the verified part, then write the entry's metadata (the commit point)
      await renameFile(dir, partHandle, `${id}.part`, `${id}.bin`);
      const meta: EntryMeta = { base: req.base, path: req.path, url: req.url, sizeBytes: size, etag, lastModified, storedAt: new Date().toISOString() };
      await writeJson(dir, `${id}.json`, meta);
      await removeEntry(dir, `${id}.part.json`);
      return { meta, blob: (await getFile(dir, `${id}.bin`))! };
    } catch (e) {
      await w.close().catch(() => {}); // the part stays for a later resume
      if (e instanceof MissingFileError || e instanceof RefusedError) {
        await removeEntry(dir, `${id}.part`);
        await removeEntry(dir, `${id}.part.json`);
      }
      throw quotaOr(e, total, what);
    }
  }

  async list(): Promise<CachedModel[]> {
    const out: CachedModel[] = [];
    for await (const [name, handle] of this.root.entries()) {
      if (handle.kind !== 'directory' || !name.startsWith('m-')) continue;
      const dir = handle as DirHandle;
      const info = await readJson<{ base: string }>(dir, 'model.json');
      if (!info) continue;
      const model: CachedModel = { base: info.base, storage: 'opfs', files: [], sizeBytes: 0, partialBytes: 0 };
      for await (const [n, h] of dir.entries()) {
        if (h.kind !== 'file') continue;
        if (n.endsWith('.part')) model.partialBytes += (await (h as FileSystemFileHandle).getFile()).size;
        else if (/^f-[0-9a-f]+\.json$/.test(n)) {
          const meta = await readJson<EntryMeta>(dir, n);
          const data = meta && (await getFile(dir, n.replace(/\.json$/, '.bin')));
          if (meta && data?.size === meta.sizeBytes) {
            model.files.push(meta);
            model.sizeBytes += meta.sizeBytes;
          }
        }
      }
      model.files.sort((a, b) => a.path.localeCompare(b.path));
      out.push(model);
    }
    return out;
  }

  async clear(base?: string): Promise<void> {
    const names: string[] = [];
    if (base !== undefined) names.push(`m-${await shortHash(base)}`);
    else for await (const [name] of this.root.entries()) names.push(name);
    for (const n of names) {
      try {
        await this.root.removeEntry(n, { recursive: true });
      } catch (e) {
        const name = (e as Error).name;
        if (name === 'NotFoundError') continue;
        if (name === 'NoModificationAllowedError' || name === 'InvalidModificationError') {
          throw new ModelLoadError(`cannot clear the cache while a download is writing to it (${(e as Error).message}); cancel the load first`, { cause: e });
        }
        throw e;
      }
    }
  }
}

async function restart(w: PartWriter): Promise<number> {
  await w.truncate(0);
  return 0;
}

/** The part file, written in place (sync access handle, workers) or through a writable stream. */
class PartWriter {
  private constructor(
    private readonly sync: SyncAccessHandle | null,
    private writable: FileSystemWritableFileStream | null,
    private length: number,
  ) {}

  static async open(handle: FileHandle, url: string): Promise<PartWriter> {
    const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';
    if (inWorker && typeof handle.createSyncAccessHandle === 'function') {
      try {
        const sync = await handle.createSyncAccessHandle();
        return new PartWriter(sync, null, await sync.getSize());
      } catch (e) {
        if ((e as Error).name === 'NoModificationAllowedError') {
          throw new ModelLoadError(`${url} is being downloaded by another tab or worker; wait for it to finish`, { cause: e });
        }
        throw e;
      }
    }
    const existing = (await handle.getFile()).size;
    return new PartWriter(null, await handle.createWritable({ keepExistingData: true }), existing);
  }

  async size(): Promise<number> {
    return this.sync ? this.sync.getSize() : this.length;
  }

  async truncate(n: number): Promise<void> {
    if (this.sync) this.sync.truncate(n);
    else await this.writable!.truncate(n);
    this.length = n;
  }

  async write(chunk: Uint8Array, at: number): Promise<void> {
    if (this.sync) {
      let done = 0;
      while (done < chunk.length) done += this.sync.write(chunk.subarray(done), { at: at + done });
    } else await this.writable!.write({ type: 'write', position: at, data: chunk as Uint8Array<ArrayBuffer> });
    this.length = Math.max(this.length, at + chunk.length);
  }

  async flush(): Promise<void> {
    this.sync?.flush();
  }

  async close(): Promise<void> {
    if (this.sync) {
      this.sync.close();
      return;
    }
    const w = this.writable;
    this.writable = null;
    if (w) await w.close();
  }
}

async function fileId(path: string): Promise<string> {
  return `f-${await shortHash(path)}`;
}

async function getFile(dir: FileSystemDirectoryHandle, name: string): Promise<File | null> {
  try {
    return await (await dir.getFileHandle(name)).getFile();
  } catch {
    return null;
  }
}

async function readJson<T>(dir: FileSystemDirectoryHandle, name: string): Promise<T | null> {
  const f = await getFile(dir, name);
  if (!f) return null;
  try {
    return JSON.parse(await f.text()) as T;
  } catch {
    return null; // a torn write: treated as absent
  }
}

async function writeJson(dir: FileSystemDirectoryHandle, name: string, value: unknown): Promise<void> {
  const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
  await w.write(JSON.stringify(value));
  await w.close(); // atomic: the swap file replaces the old content only now
}

async function removeEntry(dir: FileSystemDirectoryHandle, name: string): Promise<void> {
  try {
    await dir.removeEntry(name);
  } catch (e) {
    if ((e as Error).name !== 'NotFoundError') throw e;
  }
}

/** Renames with FileSystemHandle.move where the browser has it, else copies and deletes. */
async function renameFile(dir: FileSystemDirectoryHandle, handle: FileHandle, from: string, to: string): Promise<void> {
  if (typeof handle.move === 'function') {
    await handle.move(to);
    return;
  }
  const src = await handle.getFile();
  const w = await (await dir.getFileHandle(to, { create: true })).createWritable();
  await src.stream().pipeTo(w);
  await removeEntry(dir, from);
}
