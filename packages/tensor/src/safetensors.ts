// safetensors: header parsing with full validation, lazy reads by tensor name, and streamed upload to
// the GPU with dtype conversion on the way. Format: 8-byte little-endian header length N, N bytes of
// UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data;
// offsets are relative to the start of the data (https://github.com/huggingface/safetensors#format).

import type { ByteSource } from './byte-source.js';
import type { GpuContext } from './context.js';
import { formatShape, shapeSize, type DType } from './dtype.js';
import { SafetensorsError } from './errors.js';
import {
  convertTensorData, decodeTensorBytes, SAFETENSORS_DTYPE_BYTES, toFloat32, type SafetensorsArray, type SafetensorsDType,
} from './tensor-data.js';
import { fileRangeEntry, uploadEntry, uploadEntryInto, type TensorEntry, type TensorSource, type UploadOptions } from './tensor-source.js';
import type { Tensor } from './tensor.js';

export { SAFETENSORS_DTYPE_BYTES } from './tensor-data.js';
export type { SafetensorsArray, SafetensorsDType } from './tensor-data.js';
export type { UploadOptions } from './tensor-source.js';

export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Absolute byte offsets in the file. */
  readonly begin: number;
  readonly end: number;
}

export class SafetensorsFile implements TensorSource {
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
    // The length is the file's first 8 bytes: beyond the limits it is not echoed, so a file that is not
    // safetensors (a shard index pointing at /etc/passwd) does not leak its opening bytes into the message.
    if (n > MAX_HEADER_BYTES) throw new SafetensorsError(file, `the 8-byte header length exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
    if (8 + n > size) throw new SafetensorsError(file, `the 8-byte header length is larger than the file (${size} bytes): the header is truncated or this is not a safetensors file`);
    if (n < 2) throw new SafetensorsError(file, `header length ${n} is too short for a JSON object`);
    const headerBytes = await source.read(8, n);
    let header: unknown;
    try {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
      if (!text.startsWith('{')) throw new Error('does not start with "{"');
      header = JSON.parse(text);
    } catch (e) {
      // V8's JSON.parse messages quote the text; give only where it failed
      const at = /position (\d+)/.exec((e as Error).message)?.[1];
      throw new SafetensorsError(file, `the header is not valid JSON${at ? ` (at byte ${at})` : ''}`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) throw new SafetensorsError(file, 'the header is not a JSON object');
    const dataOffset = 8 + n;
    const dataSize = size - dataOffset;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        metadata = parseMetadata(file, raw);
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
    // As the reference Rust reader (safetensors Metadata::validate): the tensors tile the data section
    // exactly — no overlap, no hole between two tensors, no trailing bytes after the last one.
    let at = dataOffset;
    let prev: TensorInfo | null = null;
    for (const cur of sorted) {
      if (cur.begin < at) {
        throw new SafetensorsError(file, `data_offsets [${cur.begin - dataOffset}, ${cur.end - dataOffset}] overlap tensor "${prev!.name}" [${prev!.begin - dataOffset}, ${prev!.end - dataOffset}]`, cur.name);
      }
      if (cur.begin > at) {
        throw new SafetensorsError(file, `data_offsets [${cur.begin - dataOffset}, ${cur.end - dataOffset}] leave a hole of ${cur.begin - at} bytes at data offset ${at - dataOffset}${prev ? ` after tensor "${prev.name}"` : ''} (the reference reader rejects holes)`, cur.name);
      }
      at = cur.end;
      prev = cur;
    }
    if (at - dataOffset < dataSize) {
      throw new SafetensorsError(file, `${dataSize - (at - dataOffset)} trailing bytes after the tensor data (from data offset ${at - dataOffset}; the reference reader rejects them)`);
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

  /** The tensor as a source entry (undefined when the file has no such key). */
  get(name: string): TensorEntry | undefined {
    const t = this.tensors.get(name);
    return t && fileRangeEntry(this.source, name, t.dtype, t.shape, t.begin);
  }

  close(): Promise<void> {
    return this.source.close();
  }

  /** The tensor's raw little-endian bytes. */
  async readBytes(name: string, signal?: AbortSignal): Promise<Uint8Array> {
    const t = this.info(name);
    return this.source.read(t.begin, t.end - t.begin, signal);
  }

  /** The tensor decoded to its natural typed array (F16/BF16 as Uint16Array bit patterns). */
  async read(name: string, signal?: AbortSignal): Promise<SafetensorsArray> {
    const t = this.info(name);
    return decodeTensorBytes(t.dtype, await this.readBytes(name, signal));
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
    return convertTensorData(this.name, t, await this.read(name, signal), dtype);
  }

  /**
   * Streams a tensor into a new GPU tensor (ctx.weight) in bounded chunks, converting its dtype.
   * Peak host memory is about two chunks, whatever the tensor's size.
   */
  async upload(ctx: GpuContext, name: string, dtype: DType, opts: UploadOptions = {}): Promise<Tensor> {
    this.info(name);
    return uploadEntry(ctx, this.get(name)!, name, dtype, opts);
  }

  /**
   * Streams a tensor's data into an existing GPU tensor: the whole of it (same element count), or a
   * part of it starting at `opts.targetOffsetElems` (several file tensors stacked into one).
   */
  async uploadInto(target: Tensor, name: string, opts: UploadOptions = {}): Promise<void> {
    this.info(name);
    return uploadEntryInto(this.get(name)!, name, target, opts);
  }
}

/** `__metadata__` is a string → string map (the Rust reader's HashMap<String, String>). */
function parseMetadata(file: string, raw: unknown): Record<string, string> {
  if (raw === null) return {}; // Option<…> there: null is no metadata
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new SafetensorsError(file, '__metadata__ must be an object of strings');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__["${k}"] must be a string, found ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  }
  return raw as Record<string, string>;
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
