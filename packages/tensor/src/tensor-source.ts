// Sources of named tensors: what WeightStore loads from and the converters stream. A diffusers
// component's safetensors file(s) is one; a component of a single SGM checkpoint (sgm/) another; a
// GGUF file can be a third. A source names its tensors as the models expect (diffusers module paths);
// where an entry's bytes come from — a file range, rows of a fused tensor, a transpose — is the
// entry's business, so renaming happens once, at open time, and nothing is read before it is needed.

import type { ByteSource } from './byte-source.js';
import type { GpuContext } from './context.js';
import { DTYPE_BYTES, formatShape, shapeSize, type DType } from './dtype.js';
import { SafetensorsError, throwIfAborted } from './errors.js';
import {
  checkConvertible, convertTensorData, decodeTensorBytes, padBytesTo4, SAFETENSORS_DTYPE_BYTES, toFloat32,
  type SafetensorsArray, type SafetensorsDType,
} from './tensor-data.js';
import type { Tensor } from './tensor.js';
import { QUANT_BLOCKS, type QuantType } from './quantized.js';

/**
 * A tensor stored as ggml blocks (GGUF): its bytes exactly as stored — one stream of blocks over the
 * row-major values — for kernels that dequantize in the tile load. Where rows (the first dim) are
 * whole blocks (`rowsOfBlocks`), a row range of blocks is a row range of values.
 */
export interface QuantizedBlocks {
  readonly type: QuantType;
  /** Bytes of all blocks: shape[0] rows of (row length / values per block) blocks. */
  readonly byteLength: number;
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/** Whether each row of `shape` (2-D or more: the first dim) is a whole number of `type`'s blocks. */
export function rowsOfBlocks(shape: readonly number[], type: QuantType): boolean {
  return shape.length >= 2 && shape.slice(1).reduce((a, b) => a * b, 1) % QUANT_BLOCKS[type].values === 0;
}

/** One named tensor: its dtype, shape and a way to read any byte range of its row-major data. */
export interface TensorEntry {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** The file the bytes come from, for messages. */
  readonly file: string;
  /** The tensor's name there, with the view when it is one ("….in_proj_weight[rows 0:24]"). */
  readonly stored: string;
  /** Bytes [offset, offset + length) of the tensor's little-endian row-major data. */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** Present when the file stores the tensor quantized: `read` then dequantizes (dtype F32), these are the blocks. */
  readonly quantized?: QuantizedBlocks;
}

/** Named tensors, as the model expects them named. */
export interface TensorSource {
  /** A file or description, for messages. */
  readonly name: string;
  /** safetensors `__metadata__` or the like ({} when none). */
  readonly metadata: Readonly<Record<string, string>>;
  keys(): string[];
  get(key: string): TensorEntry | undefined;
  close(): Promise<void>;
}

/** A tensor stored as one contiguous range of a byte source (a safetensors file entry). */
export function fileRangeEntry(source: ByteSource, key: string, dtype: SafetensorsDType, shape: readonly number[], begin: number): TensorEntry {
  const byteLength = shapeSize(shape) * SAFETENSORS_DTYPE_BYTES[dtype];
  return {
    dtype, shape, byteLength, file: source.name, stored: key,
    read(offset, length, signal) {
      checkRange(this, offset, length);
      return source.read(begin + offset, length, signal);
    },
  };
}

/** The same bytes under another shape (an LDM 1×1 conv [C, C, 1, 1] read as a linear [C, C]). */
export function reshapedEntry(e: TensorEntry, shape: readonly number[]): TensorEntry {
  if (shapeSize(shape) !== shapeSize(e.shape)) throw new RangeError(`reshapedEntry: ${formatShape(e.shape)} → ${formatShape(shape)} changes the element count (${origin(e)})`);
  const quantized = e.quantized; // the same values in the same order: the same block stream
  return { ...where(e), dtype: e.dtype, shape, byteLength: e.byteLength, read: (o, l, s) => e.read(o, l, s), quantized };
}

/** Rows [start, start + rows) of a tensor along its first axis: a byte range, read lazily. */
export function rowSliceEntry(e: TensorEntry, start: number, rows: number): TensorEntry {
  if (!e.shape.length || start < 0 || rows < 0 || start + rows > e.shape[0]) throw new RangeError(`rowSliceEntry: rows [${start}, ${start + rows}) of ${formatShape(e.shape)} (${origin(e)})`);
  const rowBytes = e.byteLength / e.shape[0];
  const shape = [rows, ...e.shape.slice(1)];
  return {
    dtype: e.dtype, shape, byteLength: rows * rowBytes, file: e.file, stored: `${e.stored}[rows ${start}:${start + rows}]`,
    read(offset, length, signal) {
      checkRange(this, offset, length);
      return e.read(start * rowBytes + offset, length, signal);
    },
    quantized: e.quantized && rowsOfBlocks(e.shape, e.quantized.type) ? rowSliceBlocks(e.quantized, e.shape[0], start, rows) : undefined,
  };
}

function rowSliceBlocks(q: QuantizedBlocks, allRows: number, start: number, rows: number): QuantizedBlocks {
  const rowBytes = q.byteLength / allRows;
  return {
    type: q.type, byteLength: rows * rowBytes,
    read(offset, length, signal) {
      if (offset < 0 || length < 0 || offset + length > rows * rowBytes) throw new RangeError(`quantized rows [${start}, ${start + rows}): bytes [${offset}, ${offset + length}) are outside ${rows * rowBytes}`);
      return q.read(start * rowBytes + offset, length, signal);
    },
  };
}

/** Several tensors stacked along the first axis (q, k, v → a fused in_proj), read part by part. */
export function concatRowsEntry(parts: readonly TensorEntry[]): TensorEntry {
  const rest = parts[0].shape.slice(1);
  for (const p of parts) {
    if (p.dtype !== parts[0].dtype || p.shape.length !== parts[0].shape.length || p.shape.slice(1).some((d, i) => d !== rest[i])) {
      throw new RangeError(`concatRowsEntry: ${origin(p)} is ${p.dtype} ${formatShape(p.shape)}, ${origin(parts[0])} ${parts[0].dtype} ${formatShape(parts[0].shape)}`);
    }
  }
  const shape = [parts.reduce((a, p) => a + p.shape[0], 0), ...rest];
  const byteLength = parts.reduce((a, p) => a + p.byteLength, 0);
  const blocks = parts.map((p) => p.quantized);
  const sameType = blocks.every((b) => b && b.type === blocks[0]!.type); // each part is whole blocks
  const blockBytes = sameType ? blocks.reduce((a, b) => a + b!.byteLength, 0) : 0;
  return {
    dtype: parts[0].dtype, shape, byteLength, file: parts[0].file, stored: `cat(${parts.map((p) => p.stored).join(', ')})`,
    read: (offset, length, signal) => readConcat(parts, byteLength, offset, length, signal),
    // stacked rows of one block type are the blocks laid end to end
    quantized: sameType ? { type: blocks[0]!.type, byteLength: blockBytes, read: (o, l, s) => readConcat(blocks as QuantizedBlocks[], blockBytes, o, l, s) } : undefined,
  };
}

/** Bytes [offset, offset + length) of parts laid end to end. */
async function readConcat(parts: readonly { byteLength: number; read: TensorEntry['read'] }[], total: number, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > total) {
    throw new RangeError(`concatenated tensors: bytes [${offset}, ${offset + length}) are outside their ${total}`);
  }
  const out = new Uint8Array(length);
  let at = 0; // start of the current part in the whole
  for (const p of parts) {
    const from = Math.max(offset, at);
    const to = Math.min(offset + length, at + p.byteLength);
    if (from < to) out.set(await p.read(from - at, to - from, signal), from - offset);
    at += p.byteLength;
  }
  return out;
}

/**
 * A 2-D tensor transposed ([R, C] → [C, R]), as diffusers' converter does for OpenCLIP's
 * text_projection. A column of the stored tensor is strided, so the whole tensor is read once and
 * kept until its last byte has been handed out: meant for projection-sized matrices, not for GBs.
 */
export function transposedEntry(e: TensorEntry): TensorEntry {
  if (e.shape.length !== 2) throw new RangeError(`transposedEntry: ${formatShape(e.shape)} is not 2-D (${origin(e)})`);
  const [r, c] = e.shape;
  const el = SAFETENSORS_DTYPE_BYTES[e.dtype];
  let whole: Promise<Uint8Array> | null = null;
  let handedOut = 0;
  return {
    dtype: e.dtype, shape: [c, r], byteLength: e.byteLength, file: e.file, stored: `${e.stored}ᵀ`,
    async read(offset, length, signal) {
      checkRange(this, offset, length);
      const pending = (whole ??= e.read(0, e.byteLength, signal).then((src) => {
        const out = new Uint8Array(src.length);
        for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out.set(src.subarray((i * c + j) * el, (i * c + j + 1) * el), (j * r + i) * el);
        return out;
      }));
      let bytes: Uint8Array;
      try {
        bytes = (await pending).slice(offset, offset + length);
      } catch (err) {
        whole = null;
        throw err;
      }
      handedOut += length;
      if (handedOut >= e.byteLength) {
        whole = null;
        handedOut = 0;
      }
      return bytes;
    },
  };
}

function where(e: TensorEntry): { file: string; stored: string } {
  return { file: e.file, stored: e.stored };
}

function origin(e: TensorEntry): string {
  return `${e.file}: ${e.stored}`;
}

function checkRange(e: TensorEntry, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > e.byteLength) {
    throw new RangeError(`${origin(e)}: bytes [${offset}, ${offset + length}) are outside the tensor's ${e.byteLength}`);
  }
}

/** The whole tensor's raw bytes. */
export function readEntryBytes(e: TensorEntry, signal?: AbortSignal): Promise<Uint8Array> {
  return e.read(0, e.byteLength, signal);
}

/** The whole tensor decoded (F16/BF16 as Uint16Array bit patterns). */
export async function readEntry(e: TensorEntry, signal?: AbortSignal): Promise<SafetensorsArray> {
  return decodeTensorBytes(e.dtype, await readEntryBytes(e, signal));
}

/** The whole tensor as float32 values. */
export async function readEntryFloat32(e: TensorEntry, signal?: AbortSignal): Promise<Float32Array> {
  return toFloat32(e.dtype, await readEntry(e, signal));
}

/** The whole tensor in a GPU dtype on the host (f32 → Float32Array, f16 → bits, i32 → Int32Array). */
export async function readEntryAs(e: TensorEntry, key: string, dtype: DType, signal?: AbortSignal): Promise<Float32Array | Uint16Array | Int32Array> {
  return convertTensorData(e.file, { name: key, dtype: e.dtype }, await readEntry(e, signal), dtype);
}

export interface UploadOptions {
  /** Source bytes per chunk (default 8 MiB). */
  chunkBytes?: number;
  signal?: AbortSignal;
  /** Called with the number of source bytes consumed after each chunk. */
  onBytes?: (bytes: number) => void;
  /** Read only elements [sourceOffsetElems, sourceOffsetElems + countElems) of the source tensor. */
  sourceOffsetElems?: number;
  countElems?: number;
  /** Where in the target tensor the data starts (elements; default 0). */
  targetOffsetElems?: number;
  /** Called after each chunk with the bytes written; may wait for the GPU queue to drain. */
  drain?: (bytesWritten: number) => Promise<void>;
}

/**
 * Streams a tensor's data into an existing GPU tensor in bounded chunks, converting its dtype: the
 * whole of it (same element count), or a part of it starting at `opts.targetOffsetElems` (several
 * source tensors stacked into one). Peak host memory is about two chunks, whatever the tensor's size.
 */
export async function uploadEntryInto(e: TensorEntry, key: string, target: Tensor, opts: UploadOptions = {}): Promise<void> {
  const total = shapeSize(e.shape);
  const from = opts.sourceOffsetElems ?? 0;
  const n = opts.countElems ?? total - from;
  if (from < 0 || from + n > total) throw entryError(e, key, `elements [${from}, ${from + n}) are outside the tensor's ${total}`);
  const at = opts.targetOffsetElems ?? 0;
  if (opts.targetOffsetElems === undefined ? n !== target.size : at + n > target.size) {
    throw entryError(e, key, `has ${n} elements ${formatShape(e.shape)}, the target tensor ${target.size} ${formatShape(target.shape)}${at ? ` from element ${at}` : ''}`);
  }
  const tag = { name: key, dtype: e.dtype };
  const srcEl = SAFETENSORS_DTYPE_BYTES[e.dtype];
  const dstEl = DTYPE_BYTES[target.dtype];
  if ((at * dstEl) % 4) throw entryError(e, key, `cannot start at element ${at} of an ${target.dtype} tensor (4-byte alignment)`);
  checkConvertible(e.file, tag, target.dtype);
  const chunkElems = Math.max(4, Math.floor((opts.chunkBytes ?? 8 << 20) / srcEl / 4) * 4);
  for (let e0 = 0; e0 < n; e0 += chunkElems) {
    throwIfAborted(opts.signal, `loading ${key}`);
    const count = Math.min(chunkElems, n - e0);
    const bytes = await e.read((from + e0) * srcEl, count * srcEl, opts.signal);
    const converted = convertTensorData(e.file, tag, decodeTensorBytes(e.dtype, bytes), target.dtype);
    const view = new Uint8Array(converted.buffer, converted.byteOffset, converted.byteLength);
    target.ctx.write(target, view.byteLength % 4 ? padBytesTo4(view) : view, (at + e0) * dstEl);
    opts.onBytes?.(count * srcEl);
    if (opts.drain) await opts.drain(count * dstEl);
  }
}

/** A problem with entry `e`, loaded as `key`: names the file and, when they differ, both names. */
export function entryError(e: TensorEntry, key: string, problem: string): SafetensorsError {
  return new SafetensorsError(e.file, e.stored === key ? problem : `${problem} (loaded as "${key}")`, e.stored);
}

/** Streams a tensor into a new GPU tensor (ctx.weight). */
export async function uploadEntry(ctx: GpuContext, e: TensorEntry, key: string, dtype: DType, opts: UploadOptions = {}): Promise<Tensor> {
  const out = ctx.weight(e.shape, dtype, key);
  try {
    await uploadEntryInto(e, key, out, opts);
  } catch (err) {
    out.dispose();
    throw err;
  }
  return out;
}

/** A source from a key → entry map (what the SGM mappers build); closes its files when closed. */
export class TensorMap implements TensorSource {
  constructor(
    readonly name: string,
    readonly entries: ReadonlyMap<string, TensorEntry>,
    readonly metadata: Readonly<Record<string, string>> = {},
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  keys(): string[] {
    return [...this.entries.keys()];
  }

  get(key: string): TensorEntry | undefined {
    return this.entries.get(key);
  }

  close(): Promise<void> {
    return this.onClose();
  }
}

/** Several sources as one (a sharded component); a key in two of them is an error. */
export function mergeTensorSources(name: string, sources: readonly TensorSource[]): TensorSource {
  if (sources.length === 1) return sources[0];
  const entries = new Map<string, TensorEntry>();
  for (const s of sources) {
    for (const k of s.keys()) {
      if (entries.has(k)) throw new SafetensorsError(s.name, `also in ${entries.get(k)!.file} (a key may be in one shard only)`, k);
      entries.set(k, s.get(k)!);
    }
  }
  return new TensorMap(name, entries, Object.assign({}, ...sources.map((s) => s.metadata)), async () => {
    await Promise.all(sources.map((s) => s.close()));
  });
}
