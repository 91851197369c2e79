// A GGUF file (v2/v3, little-endian) as a TensorSource: magic "GGUF", version, tensor and key/value
// counts, the key/values (general.alignment, default 32), the tensor directory (name, ggml dims ne[0]
// innermost, type, offset), padding to the alignment, then the data. Only the header is read at open;
// tensors stream from the file (any size, offsets past 4 GB) when loaded. PyTorch shape = ne reversed.
// https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
import type { ByteSource } from '../byte-source.js';
import { formatShape } from '../dtype.js';
import { GgufError } from '../errors.js';
import { fileRangeEntry, type TensorEntry, type TensorSource } from '../tensor-source.js';
import { GGML_TYPES, OTHER_GGML_TYPE_NAMES, type GgmlType } from './ggml-types.js';
import { GGUF_TYPE_NAMES, ggufValueText, HeaderCursor, type GgufValue } from './gguf-header.js';
import { quantizedEntry } from './quantized-entry.js';

export const GGUF_MAGIC = 'GGUF';
export const GGUF_DEFAULT_ALIGNMENT = 32;

export interface GgufTensorInfo {
  readonly name: string;
  readonly type: GgmlType;
  /** ggml's dims, ne[0] innermost. */
  readonly ne: readonly number[];
  /** The PyTorch shape: ne reversed (or ComfyUI-GGUF's comfy.gguf.orig_shape). */
  readonly shape: readonly number[];
  /** Absolute byte range in the file. */
  readonly begin: number;
  readonly byteLength: number;
}

export interface GgufKeyValue {
  /** GGUF value type name: 'u32', 'string', 'array', … */
  readonly type: string;
  readonly value: GgufValue;
}

export class GgufFile implements TensorSource {
  private constructor(
    readonly source: ByteSource,
    readonly version: number,
    readonly kv: ReadonlyMap<string, GgufKeyValue>,
    readonly tensors: ReadonlyMap<string, GgufTensorInfo>,
    readonly alignment: number,
    readonly dataOffset: number,
    readonly fileSize: number,
  ) {}

  get name(): string {
    return this.source.name;
  }

  /** Key/values as text (scalars and arrays of up to 64 elements): what TensorSource.metadata holds. */
  get metadata(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, { value }] of this.kv) if (!Array.isArray(value) || value.length <= 64) out[k] = ggufValueText(value);
    return out;
  }

  /** Does `head` (the file's first bytes) start with the GGUF magic? */
  static sniff(head: Uint8Array): boolean {
    return head.length >= 4 && String.fromCharCode(head[0], head[1], head[2], head[3]) === GGUF_MAGIC;
  }

  /** Reads and validates the header; tensor data is read later, on demand. */
  static async open(source: ByteSource): Promise<GgufFile> {
    const file = source.name;
    const size = await source.size();
    if (size === 0) throw new GgufError(file, 'the file is empty');
    const c = new HeaderCursor(source, size);
    const magic = await c.bytes(Math.min(4, size), 'the magic');
    if (!GgufFile.sniff(magic)) throw new GgufError(file, `bad magic ${JSON.stringify(String.fromCharCode(...magic))}: not a GGUF file (expected "GGUF")`);
    const version = await c.u32('the version');
    if ((version & 0xffff) === 0) throw new GgufError(file, `version ${version}: a big-endian GGUF file, which is not supported`);
    if (version === 1) throw new GgufError(file, 'GGUF version 1 (32-bit counts) is not supported: convert the file again with a current tool');
    if (version > 3 || version === 0) throw new GgufError(file, `unsupported GGUF version ${version} (supported: 2, 3)`);
    const nTensors = await c.u64('the tensor count');
    const nKv = await c.u64('the key/value count');
    if (nTensors * 24 > size || nKv * 13 > size) throw new GgufError(file, `${nTensors} tensors and ${nKv} key/values cannot fit in a ${size}-byte file: the header is corrupt`);

    const kv = new Map<string, GgufKeyValue>();
    for (let i = 0; i < nKv; i++) {
      const key = await c.string(`key ${i}`);
      if (kv.has(key)) throw new GgufError(file, `duplicate key "${key}"`);
      const type = await c.u32(`the type of "${key}"`);
      kv.set(key, { type: GGUF_TYPE_NAMES[type] ?? String(type), value: await c.value(type, `"${key}"`) });
    }
    const alignment = readAlignment(file, kv.get('general.alignment'));

    const infos: RawInfo[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
      const name = await c.string(`the name of tensor ${i}`);
      if (seen.has(name)) throw new GgufError(file, 'the name appears twice in the tensor directory', name);
      seen.add(name);
      const nDims = await c.u32('the dimension count');
      if (nDims > 4) throw new GgufError(file, `${nDims} dimensions (ggml tensors have at most 4)`, name);
      const ne: number[] = [];
      for (let d = 0; d < nDims; d++) ne.push(await c.u64(`ne[${d}] of "${name}"`));
      const typeId = await c.u32(`the type of "${name}"`);
      const type = GGML_TYPES.get(typeId);
      if (!type) {
        const what = OTHER_GGML_TYPE_NAMES[typeId] ? `ggml type ${typeId} (${OTHER_GGML_TYPE_NAMES[typeId]})` : `unknown ggml type ${typeId}`;
        throw new GgufError(file, `${what} is not supported (supported: ${[...GGML_TYPES.values()].map((t) => t.name).join(', ')})`, name);
      }
      const count = ne.reduce((a, b) => a * b, 1);
      if (!Number.isSafeInteger(count) || count * type.blockBytes > Number.MAX_SAFE_INTEGER) throw new GgufError(file, `dims ${JSON.stringify(ne)} hold more values than can be addressed`, name);
      if (ne.length && ne[0] % type.blockValues) {
        throw new GgufError(file, `a row of ${ne[0]} values (ne[0]) is not a whole number of ${type.name} blocks of ${type.blockValues}`, name);
      }
      infos.push({ name, type, ne, shape: [...ne].reverse(), offset: await c.u64(`the offset of "${name}"`) });
    }
    for (const t of infos) t.shape = origShape(file, t, kv.get(`comfy.gguf.orig_shape.${t.name}`));
    const dataOffset = nTensors ? Math.ceil(c.pos / alignment) * alignment : c.pos;
    if (dataOffset > size) throw new GgufError(file, `truncated: the data section would start at byte ${dataOffset}, past the end of the file (${size} bytes)`);
    const tensors = checkLayout(file, infos, alignment, dataOffset, size);
    return new GgufFile(source, version, kv, tensors, alignment, dataOffset, size);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): GgufTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new GgufError(this.name, 'no such tensor in the file', name);
    return t;
  }

  /** The tensor as a source entry: F32/F16/BF16/integers as they are, block types dequantizing to F32 with their blocks attached. */
  get(name: string): TensorEntry | undefined {
    const t = this.tensors.get(name);
    if (!t) return undefined;
    return t.type.quant ? quantizedEntry(this.source, name, t.type.quant, t.shape, t.begin) : fileRangeEntry(this.source, name, t.type.dtype!, t.shape, t.begin);
  }

  close(): Promise<void> {
    return this.source.close();
  }
}

function readAlignment(file: string, a: GgufKeyValue | undefined): number {
  if (!a) return GGUF_DEFAULT_ALIGNMENT;
  const v = a.value;
  if (a.type !== 'u32' || typeof v !== 'number' || v === 0 || (v & (v - 1)) !== 0) {
    throw new GgufError(file, `general.alignment must be a u32 power of two, found ${a.type} ${ggufValueText(v)}`);
  }
  return v;
}

/** Offsets aligned, inside the data section, not overlapping; a file that ends early is "truncated". */
interface RawInfo {
  name: string;
  type: GgmlType;
  ne: number[];
  shape: number[];
  offset: number;
}

/**
 * The PyTorch shape: ne reversed, or ComfyUI-GGUF's `comfy.gguf.orig_shape.<name>` (an integer array with
 * the same element count) for a tensor it stored reshaped (a conv as rows of whole blocks).
 */
function origShape(file: string, t: RawInfo, kv: GgufKeyValue | undefined): number[] {
  if (!kv) return t.shape;
  const v = kv.value;
  const dims = Array.isArray(v) && v.every((d) => (typeof d === 'number' || typeof d === 'bigint') && Number(d) >= 0) ? v.map(Number) : null;
  if (!dims || dims.reduce((a, b) => a * b, 1) !== t.ne.reduce((a, b) => a * b, 1)) {
    throw new GgufError(file, `comfy.gguf.orig_shape.${t.name} = ${ggufValueText(v)} is not a shape of its ${t.ne.reduce((a, b) => a * b, 1)} values`, t.name);
  }
  return dims;
}

function checkLayout(file: string, infos: readonly RawInfo[], alignment: number, dataOffset: number, size: number): Map<string, GgufTensorInfo> {
  const dataSize = size - dataOffset;
  const tensors = new Map<string, GgufTensorInfo>();
  for (const t of infos) {
    const byteLength = (t.ne.reduce((a, b) => a * b, 1) / t.type.blockValues) * t.type.blockBytes;
    if (t.offset % alignment) throw new GgufError(file, `data offset ${t.offset} is not a multiple of the alignment ${alignment}: the file is corrupt`, t.name);
    tensors.set(t.name, { name: t.name, type: t.type, ne: t.ne, shape: t.shape, begin: dataOffset + t.offset, byteLength });
  }
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin);
  const end = sorted.reduce((m, t) => Math.max(m, t.begin + t.byteLength - dataOffset), 0);
  if (end > dataSize) {
    // laid end to end (each tensor padded to the alignment) and too short: a truncated file; else a bad offset
    let at = 0;
    let contiguous = true;
    for (const t of sorted) {
      if (t.begin - dataOffset !== at) contiguous = false;
      at = Math.ceil((t.begin - dataOffset + t.byteLength) / alignment) * alignment;
    }
    if (contiguous) throw new GgufError(file, `truncated: the tensor directory describes ${end} bytes of tensor data but the file holds ${dataSize} (an incomplete download?)`);
    const bad = sorted.find((t) => t.begin + t.byteLength - dataOffset > dataSize)!;
    throw new GgufError(file, `data [${bad.begin - dataOffset}, ${bad.begin - dataOffset + bad.byteLength}) is out of range: the data section is ${dataSize} bytes`, bad.name);
  }
  let prev: GgufTensorInfo | null = null;
  for (const t of sorted) {
    if (!t.byteLength) continue;
    if (prev && t.begin < prev.begin + prev.byteLength) {
      throw new GgufError(file, `data at ${t.begin - dataOffset} (${t.type.name} ${formatShape(t.shape)}, ${t.byteLength} bytes) overlaps tensor "${prev.name}" [${prev.begin - dataOffset}, ${prev.begin - dataOffset + prev.byteLength})`, t.name);
    }
    prev = t;
  }
  return tensors;
}
