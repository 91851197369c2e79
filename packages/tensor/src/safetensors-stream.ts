// Writing safetensors files of any size tensor by tensor: the header first (from the entries' dtypes
// and shapes), then each tensor's bytes read from its source in bounded chunks, converted to F16/F32
// on the way when asked. Writes go to a ByteSink: a local file (Node; under `.partial`, renamed when
// complete), or any WritableStream (a browser FileSystemWritableFileStream).

import { f32ArrayToF16, shapeSize } from './dtype.js';
import { throwIfAborted } from './errors.js';
import { safetensorsHeader } from './safetensors-writer.js';
import { decodeTensorBytes, SAFETENSORS_DTYPE_BYTES, toFloat32, type SafetensorsDType } from './tensor-data.js';
import type { TensorEntry } from './tensor-source.js';

export interface ByteSink {
  /** Where the bytes go, for messages. */
  readonly name: string;
  write(bytes: Uint8Array): Promise<void>;
  /** Completes the file. */
  close(): Promise<void>;
  /** Drops what was written (a failed or cancelled conversion leaves no half file). */
  abort(): Promise<void>;
}

export interface WriteProgress {
  writtenBytes: number;
  totalBytes: number;
  key: string;
}

export interface WriteSafetensorsOptions {
  metadata?: Record<string, string>;
  /** Store float tensors in this dtype (integer tensors are kept). Default: as stored. */
  dtype?: 'F16' | 'F32';
  /** Source bytes per read (default 16 MiB). */
  chunkBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: WriteProgress) => void;
}

const FLOAT: ReadonlySet<SafetensorsDType> = new Set(['F64', 'F32', 'F16', 'BF16']);

/** Writes `tensors` in the given order to `sink` and closes it; aborts the sink on any error. Returns the file size. */
export async function writeSafetensors(sink: ByteSink, tensors: readonly (readonly [string, TensorEntry])[], opts: WriteSafetensorsOptions = {}): Promise<number> {
  const outDtype = (e: TensorEntry): SafetensorsDType => (opts.dtype && FLOAT.has(e.dtype) ? opts.dtype : e.dtype);
  try {
    const header = safetensorsHeader(tensors.map(([k, e]) => [k, { dtype: outDtype(e), shape: e.shape }]), opts.metadata);
    const total = header.length + tensors.reduce((a, [, e]) => a + shapeSize(e.shape) * SAFETENSORS_DTYPE_BYTES[outDtype(e)], 0);
    await sink.write(header);
    let written = header.length;
    for (const [key, e] of tensors) {
      const to = outDtype(e);
      const el = SAFETENSORS_DTYPE_BYTES[e.dtype];
      const chunk = Math.max(el, Math.floor((opts.chunkBytes ?? 16 << 20) / el) * el);
      for (let off = 0; off < e.byteLength; off += chunk) {
        throwIfAborted(opts.signal, `writing ${sink.name}`);
        const bytes = await e.read(off, Math.min(chunk, e.byteLength - off), opts.signal);
        const out = to === e.dtype ? bytes : convertBytes(e.dtype, to, bytes);
        await sink.write(out);
        written += out.byteLength;
        opts.onProgress?.({ writtenBytes: written, totalBytes: total, key });
      }
    }
    await sink.close();
    return total;
  } catch (err) {
    await sink.abort().catch(() => {});
    throw err;
  }
}

function convertBytes(from: SafetensorsDType, to: SafetensorsDType, bytes: Uint8Array): Uint8Array {
  const f32 = toFloat32(from, decodeTensorBytes(from, bytes));
  const out = to === 'F16' ? f32ArrayToF16(f32) : f32;
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

interface NodeWriteHandle {
  write(b: Uint8Array): Promise<{ bytesWritten: number }>;
  close(): Promise<void>;
}
interface NodeFsWrite {
  open(p: string, flags: string): Promise<NodeWriteHandle>;
  rename(a: string, b: string): Promise<void>;
  rm(p: string, o: { force: boolean }): Promise<void>;
  mkdir(p: string, o: { recursive: boolean }): Promise<unknown>;
  writeFile(p: string, data: string): Promise<void>;
}

function nodeFs(): Promise<NodeFsWrite> {
  const name = 'node:fs/promises';
  return import(/* @vite-ignore */ name) as Promise<NodeFsWrite>;
}

function parentDir(path: string): string {
  const i = path.replace(/\/+$/, '').lastIndexOf('/');
  return i > 0 ? path.slice(0, i) : '.';
}

/** A local file (Node): written to `<path>.partial`, renamed to `path` when complete. */
export class NodeFileSink implements ByteSink {
  private handle: Promise<NodeWriteHandle> | null = null;
  constructor(readonly name: string) {}

  private open(): Promise<NodeWriteHandle> {
    return (this.handle ??= (async () => {
      const fs = await nodeFs();
      await fs.mkdir(parentDir(this.name), { recursive: true });
      return fs.open(`${this.name}.partial`, 'w');
    })());
  }

  async write(bytes: Uint8Array): Promise<void> {
    const h = await this.open();
    for (let done = 0; done < bytes.byteLength; ) done += (await h.write(bytes.subarray(done))).bytesWritten;
  }

  async close(): Promise<void> {
    const h = await this.open();
    await h.close();
    await (await nodeFs()).rename(`${this.name}.partial`, this.name);
  }

  async abort(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await (await h.catch(() => null))?.close().catch(() => {});
    await (await nodeFs()).rm(`${this.name}.partial`, { force: true });
  }
}

/** A WritableStream of bytes (e.g. from showSaveFilePicker().createWritable()). */
export class WritableStreamSink implements ByteSink {
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  constructor(stream: WritableStream<Uint8Array>, readonly name = 'stream') {
    this.writer = stream.getWriter();
  }
  write(bytes: Uint8Array): Promise<void> {
    return this.writer.write(bytes);
  }
  close(): Promise<void> {
    return this.writer.close();
  }
  abort(): Promise<void> {
    return this.writer.abort();
  }
}

/** Where a converted folder goes: text files and streamed weight files by model-relative path. */
export interface FolderSink {
  readonly description: string;
  writeText(path: string, text: string): Promise<void>;
  openFile(path: string): ByteSink;
}

/** A local folder (Node). */
export class NodeFolderSink implements FolderSink {
  constructor(readonly root: string) {}
  get description(): string {
    return this.root;
  }
  private full(path: string): string {
    return `${this.root.replace(/\/+$/, '')}/${path}`;
  }
  async writeText(path: string, text: string): Promise<void> {
    const fs = await nodeFs();
    await fs.mkdir(parentDir(this.full(path)), { recursive: true });
    await fs.writeFile(this.full(path), text);
  }
  openFile(path: string): ByteSink {
    return new NodeFileSink(this.full(path));
  }
}
