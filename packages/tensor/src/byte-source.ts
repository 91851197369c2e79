// Random-access byte sources: a local file (Node), a Blob/File (browser), a URL (HTTP range requests).
// Everything above reads through `read(offset, length)`, so a multi-GB file is never held whole.

import { AbortError, ModelLoadError, throwIfAborted } from './errors.js';
import { timedFetch, TransientHttpError, type HttpTimeouts, type TimedResponse } from './http.js';

export interface ByteSource {
  /** Path or URL, for messages. */
  readonly name: string;
  /** Total size in bytes. */
  size(): Promise<number>;
  /** Exactly `length` bytes at `offset`; a short read is a ModelLoadError (truncated file). */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  close(): Promise<void>;
}

interface NodeFileHandle {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<NodeStats>;
  close(): Promise<void>;
}

interface NodeStats {
  size: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isFIFO(): boolean;
}

interface NodeFs {
  open(p: string, flags: string | number): Promise<NodeFileHandle>;
  constants: { O_RDONLY: number; O_NONBLOCK?: number };
}

/**
 * Opens a path for reading and checks, on the open handle, that it is a regular file. O_NONBLOCK
 * (where the platform has it) makes opening a FIFO return at once instead of waiting for a writer;
 * it changes nothing for regular files. A directory, FIFO or device is a ModelLoadError.
 */
export async function openRegularFile(fs: NodeFs, path: string): Promise<NodeFileHandle> {
  let fh: NodeFileHandle;
  try {
    const { O_RDONLY, O_NONBLOCK } = fs.constants;
    fh = await fs.open(path, O_NONBLOCK === undefined ? 'r' : O_RDONLY | O_NONBLOCK);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new ModelLoadError(code === 'ENOENT' ? `file not found: ${path}` : `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close().catch(() => {});
    const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO (named pipe)' : 'a device or socket';
    throw new ModelLoadError(`${path} is ${kind}, not a regular file`);
  }
  return fh;
}

/** A local file, read with positional reads (files over 4 GB included). Node only. */
export class NodeFileSource implements ByteSource {
  private handle: Promise<NodeFileHandle> | null = null;
  constructor(readonly name: string) {}

  private open(): Promise<NodeFileHandle> {
    return (this.handle ??= (async () => {
      const fsName = 'node:fs/promises';
      const fs = (await import(/* @vite-ignore */ fsName)) as NodeFs;
      let fh: NodeFileHandle;
      try {
        fh = await openRegularFile(fs, this.name);
      } catch (e) {
        this.handle = null;
        throw e;
      }
      return fh;
    })());
  }

  async size(): Promise<number> {
    return (await (await this.open()).stat()).size;
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    throwIfAborted(signal, `reading ${this.name}`);
    const fh = await this.open();
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(out, done, Math.min(length - done, 1 << 30), offset + done);
      if (bytesRead === 0) {
        throw new ModelLoadError(`${this.name}: unexpected end of file at byte ${offset + done} (wanted ${length} bytes at ${offset}); the file is truncated`);
      }
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await (await h.catch(() => null))?.close();
  }
}

interface DenoFsFile {
  seek(offset: number, whence: number): Promise<number>;
  read(p: Uint8Array): Promise<number | null>;
  stat(): Promise<{ size: number }>;
  close(): void;
}

/**
 * A local file under Deno, read piece by piece (seek + read; files over 4 GB included), so a
 * multi-GB weight file never sits whole in memory. Reads of one file are serialised: a seek and
 * the read after it must not interleave with another read's.
 */
export class DenoFileSource implements ByteSource {
  private file: Promise<DenoFsFile> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  constructor(readonly name: string) {}

  private open(): Promise<DenoFsFile> {
    const deno = (globalThis as unknown as { Deno: { open(p: string, o: { read: boolean }): Promise<DenoFsFile> } }).Deno;
    return (this.file ??= deno.open(this.name, { read: true }).catch((e: unknown) => {
      this.file = null;
      throw new ModelLoadError(`cannot open ${this.name}: ${(e as Error).message}`, { cause: e });
    }));
  }

  async size(): Promise<number> {
    return (await (await this.open()).stat()).size;
  }

  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const run = async () => {
      throwIfAborted(signal, `reading ${this.name}`);
      const f = await this.open();
      await f.seek(offset, 0 /* Deno.SeekMode.Start */);
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = await f.read(out.subarray(done, Math.min(length, done + (1 << 30))));
        if (!n) throw new ModelLoadError(`${this.name}: unexpected end of file at byte ${offset + done} (wanted ${length} bytes at ${offset}); the file is truncated`);
        done += n;
      }
      return out;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    await this.queue; // a read in flight finishes first
    const f = this.file;
    this.file = null;
    if (f) (await f.catch(() => null))?.close();
  }
}

/** A Blob or File (browser folder pickers, drag and drop). */
export class BlobSource implements ByteSource {
  constructor(
    readonly blob: Blob,
    readonly name: string = (blob as File).name ?? 'blob',
  ) {}

  async size(): Promise<number> {
    return this.blob.size;
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    throwIfAborted(signal, `reading ${this.name}`);
    if (offset + length > this.blob.size) {
      throw new ModelLoadError(`${this.name}: unexpected end of file at byte ${this.blob.size} (wanted ${length} bytes at ${offset}); the file is truncated`);
    }
    return new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
  }

  async close(): Promise<void> {}
}

export interface HttpOptions extends HttpTimeouts {
  fetch?: typeof fetch;
  headers?: Record<string, string>;
  /** Retries after a dropped connection, a timeout or a 5xx answer (default 2). */
  retries?: number;
  /** UrlSource.readText: the largest JSON or text file it downloads (default MAX_TEXT_BYTES, 64 MiB). */
  maxTextBytes?: number;
}

/** A URL read with HTTP range requests. A server that ignores Range is a clear error. */
export class HttpRangeSource implements ByteSource {
  private sizePromise: Promise<number> | null = null;
  private readonly fetchImpl: typeof fetch;

  constructor(
    readonly name: string,
    private readonly options: HttpOptions = {},
  ) {
    this.fetchImpl = options.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  }

  size(): Promise<number> {
    return (this.sizePromise ??= this.fetchSize().catch((e) => {
      this.sizePromise = null;
      throw e;
    }));
  }

  private async fetchSize(): Promise<number> {
    const r = await this.request({ Range: 'bytes=0-0' });
    await r.cancel();
    const res = r.res;
    const range = res.headers.get('content-range');
    const total = range ? Number(/\/(\d+)\s*$/.exec(range)?.[1]) : NaN;
    if (res.status === 206 && Number.isSafeInteger(total)) return total;
    const len = Number(res.headers.get('content-length'));
    if (res.status === 200 && Number.isSafeInteger(len)) return len;
    throw new ModelLoadError(`${this.name}: cannot tell the file size (status ${res.status}, no Content-Range)`);
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array(0);
    const retries = this.options.retries ?? 2;
    const last = offset + length - 1;
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal, `downloading ${this.name}`);
      try {
        const r = await this.request({ Range: `bytes=${offset}-${last}` }, signal);
        const res = r.res;
        if (res.status === 200) {
          await r.cancel();
          throw new ModelLoadError(`${this.name}: the server ignored the HTTP Range header (answered 200 instead of 206); serve the model from a server that supports range requests`);
        }
        if (res.status === 416) {
          await r.cancel();
          throw new ModelLoadError(`${this.name}: range ${offset}+${length} is past the end of the file; the file is truncated`);
        }
        // the sizes the server announces are checked before any byte is read, and the body is read
        // with a cap: a server cannot make us buffer more than we asked for
        const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range')?.trim() ?? '');
        if (cr && (Number(cr[1]) !== offset || Number(cr[2]) !== last)) {
          await r.cancel();
          const total = Number(cr[3]);
          if (Number(cr[1]) === offset && Number(cr[2]) < last && Number.isFinite(total) && total <= last) {
            throw new ModelLoadError(`${this.name}: asked for bytes ${offset}-${last} but the file has ${total} bytes; the file is truncated`);
          }
          throw new ModelLoadError(`${this.name}: asked for bytes ${offset}-${last}, the server sent bytes ${cr[1]}-${cr[2]} (Content-Range)`);
        }
        const announced = res.headers.get('content-length');
        const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity'; // then it counts compressed bytes
        if (announced !== null && !encoded && Number(announced) !== length) {
          await r.cancel();
          throw new TransientHttpError(`${this.name}: asked for ${length} bytes at ${offset}, the server announced ${announced} (Content-Length)`);
        }
        const buf = await r.readBody(length, `bytes ${offset}-${last}`);
        if (buf.length !== length) {
          throw new TransientHttpError(`${this.name}: got ${buf.length} of ${length} bytes at ${offset}; the connection dropped or the file is truncated`);
        }
        return buf;
      } catch (e) {
        if (e instanceof AbortError || signal?.aborted) throw e instanceof AbortError ? e : new AbortError(`downloading ${this.name} was aborted`, { cause: e });
        const retryable = e instanceof TransientHttpError || !(e instanceof ModelLoadError);
        if (!retryable || attempt >= retries) {
          if (e instanceof ModelLoadError) throw e;
          throw new ModelLoadError(`${this.name}: download failed (${(e as Error).message})`, { cause: e });
        }
      }
    }
  }

  private async request(headers: Record<string, string>, signal?: AbortSignal): Promise<TimedResponse> {
    let r: TimedResponse;
    try {
      r = await timedFetch(this.fetchImpl, this.name, { headers: { ...this.options.headers, ...headers } }, this.options, signal);
    } catch (e) {
      if (e instanceof AbortError || e instanceof TransientHttpError) throw e;
      if (signal?.aborted) throw new AbortError(`downloading ${this.name} was aborted`, { cause: e });
      throw new TransientHttpError(`${this.name}: request failed (${(e as Error).message})`);
    }
    const res = r.res;
    if (res.status >= 500) {
      await r.cancel();
      throw new TransientHttpError(`${this.name}: server error ${res.status} ${res.statusText}`);
    }
    if (!res.ok) {
      await r.cancel();
      throw new ModelLoadError(`${this.name}: HTTP ${res.status} ${res.statusText}`);
    }
    return r;
  }

  async close(): Promise<void> {}
}
