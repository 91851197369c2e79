// safetensors: header parsing with full validation, lazy reads by tensor name, and streamed upload to
// the GPU with dtype conversion on the way. Format: 8-byte little-endian header length N, N bytes of
// UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data;
// offsets are relative to the start of the data (https://github.com/huggingface/safetensors#format).

import type { ByteSource } from './byte-source.js';
import type { GpuContext } from './context.js';
import { bf16ArrayToF16, bf16ArrayToF32, DTYPE_BYTES, f16ArrayToF32, f32ArrayToF16, formatShape, shapeSize, type DType } from './dtype.js';
import { SafetensorsError, throwIfAborted } from './errors.js';
import type { Tensor } from './tensor.js';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Absolute byte offsets in the file. */
  readonly begin: number;
  readonly end: number;
}

/** Typed array a tensor decodes to: f16/bf16 as raw Uint16Array bits. */
export type SafetensorsArray = Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export class SafetensorsFile {
  private constructor(
    readonly source: ByteSource,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
    readonly dataOffset: number,
    readonly fileSize: number,
  ) {}

  get name(): string {
    return this.source.name;
  }

  /** Reads and validates the header; tensor data is read later, on demand. */
  static async open(source: ByteSource): Promise<SafetensorsFile> {
    const file = source.name;
    const size = await source.size();
    if (size === 0) throw new SafetensorsError(file, 'the file is empty');
    if (size < 8) throw new SafetensorsError(file, `the file is ${size} bytes, too short for the 8-byte header length`);
    const lenBytes = await source.read(0, 8);
    const n = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
    if (n > MAX_HEADER_BYTES) throw new SafetensorsError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
    if (8 + n > size) throw new SafetensorsError(file, `header length ${n} is larger than the file (${size} bytes): the header is truncated or this is not a safetensors file`);
    if (n < 2) throw new SafetensorsError(file, `header length ${n} is too short for a JSON object`);
    const headerBytes = await source.read(8, n);
    let header: unknown;
    try {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
      if (!text.startsWith('{')) throw new Error('does not start with "{"');
      header = JSON.parse(text);
    } catch (e) {
      throw new SafetensorsError(file, `the header is not valid JSON (${(e as Error).message})`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) throw new SafetensorsError(file, 'the header is not a JSON object');
    const dataOffset = 8 + n;
    const dataSize = size - dataOffset;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (raw && typeof raw === 'object' && !Array.isArray(raw)) metadata = raw as Record<string, string>;
        continue;
      }
      tensors.set(name, parseEntry(file, name, raw, dataOffset));
    }
    // Offsets: inside the data section, and no two tensors overlapping.
    const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
    const span = sorted.reduce((m, t) => Math.max(m, t.end - dataOffset), 0);
    if (span > dataSize) {
      let contiguous = true;
      let at = dataOffset;
      for (const t of sorted) {
        if (t.begin !== at) contiguous = false;
        at = t.end;
      }
      if (contiguous) {
        throw new SafetensorsError(file, `truncated: the header describes ${span} bytes of tensor data but the file holds ${dataSize} (an incomplete download?)`);
      }
      const bad = sorted.find((t) => t.end - dataOffset > dataSize)!;
      throw new SafetensorsError(file, `data_offsets [${bad.begin - dataOffset}, ${bad.end - dataOffset}] are out of range: the data section is ${dataSize} bytes`, bad.name);
    }
    let last: TensorInfo | null = null; // the non-empty tensor reaching furthest so far
    for (const cur of sorted) {
      if (cur.end === cur.begin) continue;
      if (last && cur.begin < last.end) {
        throw new SafetensorsError(file, `data_offsets [${cur.begin - dataOffset}, ${cur.end - dataOffset}] overlap tensor "${last.name}" [${last.begin - dataOffset}, ${last.end - dataOffset}]`, cur.name);
      }
      if (!last || cur.end > last.end) last = cur;
    }
    return new SafetensorsFile(source, tensors, metadata, dataOffset, size);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.name, 'no such tensor in the file', name);
    return t;
  }

  /** The tensor's raw little-endian bytes. */
  async readBytes(name: string, signal?: AbortSignal): Promise<Uint8Array> {
    const t = this.info(name);
    return this.source.read(t.begin, t.end - t.begin, signal);
  }

  /** The tensor decoded to its natural typed array (F16/BF16 as Uint16Array bit patterns). */
  async read(name: string, signal?: AbortSignal): Promise<SafetensorsArray> {
    const t = this.info(name);
    return decode(t.dtype, await this.readBytes(name, signal));
  }

  /** The tensor as float32 values (F64/F32/F16/BF16 and integer dtypes). */
  async readFloat32(name: string, signal?: AbortSignal): Promise<Float32Array> {
    const t = this.info(name);
    return toFloat32(t.dtype, await this.read(name, signal));
  }

  /**
   * The tensor's values in a GPU dtype on the host: f32 → Float32Array, f16 → Uint16Array bits,
   * i32 → Int32Array. Converts F32/F16/BF16 between float types and I64/I32 to i32.
   */
  async readAs(name: string, dtype: DType, signal?: AbortSignal): Promise<Float32Array | Uint16Array | Int32Array> {
    const t = this.info(name);
    return convert(this.name, t, await this.read(name, signal), dtype);
  }

  /**
   * Streams a tensor into a new GPU tensor (ctx.weight) in bounded chunks, converting its dtype.
   * Peak host memory is about two chunks, whatever the tensor's size.
   */
  async upload(ctx: GpuContext, name: string, dtype: DType, opts: UploadOptions = {}): Promise<Tensor> {
    const t = this.info(name);
    const out = ctx.weight(t.shape, dtype, name);
    try {
      await this.uploadInto(out, name, opts);
    } catch (e) {
      out.dispose();
      throw e;
    }
    return out;
  }

  /**
   * Streams a tensor's data into an existing GPU tensor: the whole of it (same element count), or a
   * part of it starting at `opts.targetOffsetElems` (several file tensors stacked into one).
   */
  async uploadInto(target: Tensor, name: string, opts: UploadOptions = {}): Promise<void> {
    const t = this.info(name);
    const from = opts.sourceOffsetElems ?? 0;
    const n = opts.countElems ?? shapeSize(t.shape) - from;
    if (from < 0 || from + n > shapeSize(t.shape)) throw new SafetensorsError(this.name, `elements [${from}, ${from + n}) are outside the tensor's ${shapeSize(t.shape)}`, name);
    const at = opts.targetOffsetElems ?? 0;
    if (opts.targetOffsetElems === undefined ? n !== target.size : at + n > target.size) {
      throw new SafetensorsError(this.name, `has ${n} elements ${formatShape(t.shape)}, the target tensor ${target.size} ${formatShape(target.shape)}${at ? ` from element ${at}` : ''}`, name);
    }
    checkConvertible(this.name, t, target.dtype);
    const srcEl = SAFETENSORS_DTYPE_BYTES[t.dtype];
    const dstEl = DTYPE_BYTES[target.dtype];
    if ((at * dstEl) % 4) throw new SafetensorsError(this.name, `cannot start at element ${at} of an ${target.dtype} tensor (4-byte alignment)`, name);
    const chunkElems = Math.max(4, Math.floor((opts.chunkBytes ?? 8 << 20) / srcEl / 4) * 4);
    for (let e0 = 0; e0 < n; e0 += chunkElems) {
      throwIfAborted(opts.signal, `loading ${name}`);
      const count = Math.min(chunkElems, n - e0);
      const bytes = await this.source.read(t.begin + (from + e0) * srcEl, count * srcEl, opts.signal);
      const converted = convert(this.name, t, decode(t.dtype, bytes), target.dtype);
      const view = new Uint8Array(converted.buffer, converted.byteOffset, converted.byteLength);
      const padded = view.byteLength % 4 ? padBytes(view) : view;
      target.ctx.write(target, padded, (at + e0) * dstEl);
      opts.onBytes?.(count * srcEl);
      if (opts.drain) await opts.drain(count * dstEl);
    }
  }
}

export interface UploadOptions {
  /** Source bytes per chunk (default 8 MiB). */
  chunkBytes?: number;
  signal?: AbortSignal;
  /** Called with the number of file bytes consumed after each chunk. */
  onBytes?: (bytes: number) => void;
  /** Read only elements [sourceOffsetElems, sourceOffsetElems + countElems) of the file tensor. */
  sourceOffsetElems?: number;
  countElems?: number;
  /** Where in the target tensor the data starts (elements; default 0). */
  targetOffsetElems?: number;
  /** Called after each chunk with the bytes written; may wait for the GPU queue to drain. */
  drain?: (bytesWritten: number) => Promise<void>;
}

function parseEntry(file: string, name: string, raw: unknown, dataOffset: number): TensorInfo {
  if (!raw || typeof raw !== 'object') throw new SafetensorsError(file, 'header entry is not an object', name);
  const { dtype, shape, data_offsets: offs } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== 'string' || !(dtype in SAFETENSORS_DTYPE_BYTES)) {
    throw new SafetensorsError(file, `unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`, name);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(file, `invalid shape ${JSON.stringify(shape)}`, name);
  }
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[1] < offs[0]) {
    throw new SafetensorsError(file, `invalid data_offsets ${JSON.stringify(offs)}`, name);
  }
  const expected = shapeSize(shape) * SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDType];
  if (offs[1] - offs[0] !== expected) {
    throw new SafetensorsError(file, `shape ${formatShape(shape)} × ${dtype} needs ${expected} bytes but data_offsets [${offs[0]}, ${offs[1]}] span ${offs[1] - offs[0]}`, name);
  }
  return { name, dtype: dtype as SafetensorsDType, shape, begin: dataOffset + offs[0], end: dataOffset + offs[1] };
}

function decode(dtype: SafetensorsDType, bytes: Uint8Array): SafetensorsArray {
  // copy to an aligned buffer when needed (typed arrays need element-aligned offsets)
  const el = SAFETENSORS_DTYPE_BYTES[dtype];
  const b = bytes.byteOffset % el === 0 ? bytes : bytes.slice();
  const n = b.byteLength / el;
  switch (dtype) {
    case 'F64': return new Float64Array(b.buffer, b.byteOffset, n);
    case 'F32': return new Float32Array(b.buffer, b.byteOffset, n);
    case 'F16':
    case 'BF16': return new Uint16Array(b.buffer, b.byteOffset, n);
    case 'I64': return new BigInt64Array(b.buffer, b.byteOffset, n);
    case 'I32': return new Int32Array(b.buffer, b.byteOffset, n);
    case 'I16': return new Int16Array(b.buffer, b.byteOffset, n);
    case 'I8': return new Int8Array(b.buffer, b.byteOffset, n);
    case 'U8':
    case 'BOOL': return b;
  }
}

function toFloat32(dtype: SafetensorsDType, a: SafetensorsArray): Float32Array {
  if (dtype === 'F32') return a as Float32Array;
  if (dtype === 'F16') return f16ArrayToF32(a as Uint16Array);
  if (dtype === 'BF16') return bf16ArrayToF32(a as Uint16Array);
  if (dtype === 'I64') return Float32Array.from(a as BigInt64Array, (v) => Number(v));
  return Float32Array.from(a as ArrayLike<number>);
}

function checkConvertible(file: string, t: TensorInfo, to: DType): void {
  const float = t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16' || t.dtype === 'F64';
  const int = t.dtype === 'I64' || t.dtype === 'I32';
  if ((to === 'f32' || to === 'f16') && float) return;
  if (to === 'i32' && int) return;
  throw new SafetensorsError(file, `dtype ${t.dtype} cannot be loaded as ${to}`, t.name);
}

function convert(file: string, t: TensorInfo, a: SafetensorsArray, to: DType): Float32Array | Uint16Array | Int32Array {
  checkConvertible(file, t, to);
  if (to === 'f16') {
    if (t.dtype === 'F16') return a as Uint16Array;
    if (t.dtype === 'BF16') return bf16ArrayToF16(a as Uint16Array);
    return f32ArrayToF16(t.dtype === 'F32' ? (a as Float32Array) : Float32Array.from(a as Float64Array));
  }
  if (to === 'f32') return toFloat32(t.dtype, a);
  if (t.dtype === 'I32') return a as Int32Array;
  const big = a as BigInt64Array;
  const out = new Int32Array(big.length);
  for (let i = 0; i < big.length; i++) {
    const v = big[i];
    if (v > 2147483647n || v < -2147483648n) throw new SafetensorsError(file, `value ${v} at index ${i} does not fit in i32`, t.name);
    out[i] = Number(v);
  }
  return out;
}

function padBytes(v: Uint8Array): Uint8Array {
  const p = new Uint8Array(Math.ceil(v.byteLength / 4) * 4);
  p.set(v);
  return p;
}
