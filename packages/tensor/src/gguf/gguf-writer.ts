// Writing GGUF v3 files tensor by tensor, laid out as ggml's gguf writer and stable-diffusion.cpp's
// streaming converter lay them out: header (key/values, then each tensor's name, ggml_n_dims dims with
// ne[0] innermost, type and offset), zero padding to the alignment, each tensor's data padded to the
// alignment except the last. Each tensor is read from its source in bounded chunks of whole blocks and
// converted (f32 ⇄ f16/bf16) or quantized (ggml's reference quantizers) on the way.
import { f32ArrayToF16 } from '../dtype.js';
import { InvalidArgumentError, throwIfAborted } from '../errors.js';
import type { ByteSink, WriteProgress } from '../safetensors-stream.js';
import { decodeTensorBytes, SAFETENSORS_DTYPE_BYTES, toFloat32 } from '../tensor-data.js';
import type { TensorEntry } from '../tensor-source.js';
import { ggmlBytes, type GgmlType } from './ggml-types.js';
import { GGUF_DEFAULT_ALIGNMENT } from './gguf-file.js';
import { quantizeBlocks } from './quantize.js';
import { quantizeRowsSdcpp } from './quantize-sdcpp.js';

export interface GgufTensorToWrite {
  readonly name: string;
  readonly entry: TensorEntry;
  /** The type to store: the entry's own (copied, or converted between float types) or a block type. */
  readonly type: GgmlType;
  /**
   * The shape to store when it differs from the entry's (a conv [O, I, kh, kw] as [O, I·kh·kw], so that
   * its rows are whole blocks): the entry's shape is then kept in `comfy.gguf.orig_shape.<name>`, as
   * ComfyUI-GGUF writes and reads it.
   */
  readonly storedShape?: readonly number[];
}

export interface WriteGgufOptions {
  /** String key/values for the header (none by default, as sd.cpp writes). */
  metadata?: Readonly<Record<string, string>>;
  /** Source values per quantization chunk (default 4 Mi; whole rows). */
  chunkValues?: number;
  /**
   * 'reference' (default): ggml's reference quantizers. 'sdcpp': the importance-weighted search with
   * an importance of ones that stable-diffusion.cpp's convert runs (the same bytes as its files).
   */
  quantizer?: 'reference' | 'sdcpp';
  signal?: AbortSignal;
  onProgress?: (p: WriteProgress) => void;
}

class Bytes {
  private parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.push(b);
  }
  u64(v: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.push(b);
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.push(b);
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

const pad = (n: number, a: number) => Math.ceil(n / a) * a;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** ggml dims of a PyTorch shape, trailing 1s dropped as ggml_n_dims does (at least one dim). */
export function ggmlDims(shape: readonly number[]): number[] {
  const ne = [...shape].reverse();
  while (ne.length > 1 && ne[ne.length - 1] === 1) ne.pop();
  return ne.length ? ne : [1];
}

/** The header of a GGUF file holding `tensors` in this order, and each tensor's data offset. */
export function ggufHeader(tensors: readonly GgufTensorToWrite[], metadata: Readonly<Record<string, string>> = {}): { header: Uint8Array; offsets: number[]; dataBytes: number } {
  const h = new Bytes();
  const origShapes = tensors.filter((t) => t.storedShape && !sameShape(t.storedShape, t.entry.shape));
  h.push(new TextEncoder().encode('GGUF'));
  h.u32(3);
  h.u64(tensors.length);
  h.u64(Object.keys(metadata).length + origShapes.length);
  for (const [k, v] of Object.entries(metadata)) {
    h.string(k);
    h.u32(8); // string
    h.string(v);
  }
  for (const t of origShapes) {
    h.string(`comfy.gguf.orig_shape.${t.name}`);
    h.u32(9); // array
    h.u32(5); // of i32
    h.u64(t.entry.shape.length);
    for (const d of t.entry.shape) h.u32(d);
  }
  const offsets: number[] = [];
  let at = 0;
  for (const t of tensors) {
    const stored = t.storedShape ?? t.entry.shape;
    if (stored.reduce((a, b) => a * b, 1) !== t.entry.shape.reduce((a, b) => a * b, 1)) throw new InvalidArgumentError(`${t.name}: stored shape [${stored.join(', ')}] does not hold the tensor's [${t.entry.shape.join(', ')}]`);
    const ne = ggmlDims(stored);
    if (ne.length > 4) throw new InvalidArgumentError(`${t.name}: ${stored.length} dims; GGUF tensors have at most 4`);
    if (ne[0] % t.type.blockValues) throw new InvalidArgumentError(`${t.name}: a row of ${ne[0]} values is not whole ${t.type.name} blocks of ${t.type.blockValues}`);
    h.string(t.name);
    h.u32(ne.length);
    for (const d of ne) h.u64(d);
    h.u32(t.type.id);
    h.u64(at);
    offsets.push(at);
    at = pad(at + tensorBytes(t), GGUF_DEFAULT_ALIGNMENT);
  }
  const header = new Uint8Array(pad(h.length, GGUF_DEFAULT_ALIGNMENT));
  header.set(h.concat());
  const last = tensors.length ? offsets[offsets.length - 1] + tensorBytes(tensors[tensors.length - 1]) : 0;
  return { header, offsets, dataBytes: last };
}

function tensorBytes(t: GgufTensorToWrite): number {
  return ggmlBytes(t.type, t.entry.shape.reduce((a, b) => a * b, 1));
}

/** Writes `tensors` in the given order to `sink` and closes it; aborts the sink on any error. Returns the file size. */
export async function writeGguf(sink: ByteSink, tensors: readonly GgufTensorToWrite[], opts: WriteGgufOptions = {}): Promise<number> {
  try {
    const { header, offsets, dataBytes } = ggufHeader(tensors, opts.metadata);
    const total = header.length + dataBytes;
    await sink.write(header);
    let written = header.length;
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      const gap = header.length + offsets[i] - written; // the previous tensor's alignment padding
      if (gap) await sink.write(new Uint8Array(gap));
      written += gap;
      for await (const bytes of tensorData(t, opts)) {
        await sink.write(bytes);
        written += bytes.length;
        opts.onProgress?.({ writtenBytes: written, totalBytes: total, key: t.name });
      }
    }
    await sink.close();
    return total;
  } catch (err) {
    await sink.abort().catch(() => {});
    throw err;
  }
}

/** The tensor's bytes in its target type, a chunk at a time. */
async function* tensorData(t: GgufTensorToWrite, opts: WriteGgufOptions): AsyncGenerator<Uint8Array> {
  const e = t.entry;
  if (e.quantized && t.type.quant === e.quantized.type) {
    yield* chunks(e.quantized.byteLength, 16 << 20, (o, n) => e.quantized!.read(o, n, opts.signal), opts.signal, t.name);
    return;
  }
  const sameBytes = !e.quantized && t.type.dtype === e.dtype;
  if (sameBytes) {
    yield* chunks(e.byteLength, 16 << 20, (o, n) => e.read(o, n, opts.signal), opts.signal, t.name);
    return;
  }
  if (!['F32', 'F16', 'BF16', 'F64'].includes(e.dtype)) throw new InvalidArgumentError(`${t.name}: ${e.dtype} tensors cannot be written as ${t.type.name}`);
  const el = SAFETENSORS_DTYPE_BYTES[e.dtype];
  const stored = t.storedShape ?? e.shape;
  const row = stored.length ? stored[stored.length - 1] : 1; // ggml's ne[0]
  const per = Math.max(1, Math.floor((opts.chunkValues ?? 4 << 20) / row)) * row; // whole rows, so whole blocks
  const count = e.byteLength / el;
  for (let v = 0; v < count; v += per) {
    throwIfAborted(opts.signal, `writing ${t.name}`);
    const n = Math.min(per, count - v);
    const f32 = toFloat32(e.dtype, decodeTensorBytes(e.dtype, await e.read(v * el, n * el, opts.signal)));
    yield floatsAs(t.type, f32, row, opts.quantizer);
  }
}

function floatsAs(type: GgmlType, f32: Float32Array, row: number, quantizer: WriteGgufOptions['quantizer']): Uint8Array {
  if (type.quant) return quantizer === 'sdcpp' ? quantizeRowsSdcpp(type.quant, f32, row) : quantizeBlocks(type.quant, f32);
  if (type.dtype === 'F32') return new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  if (type.dtype === 'F16') {
    const h = f32ArrayToF16(f32);
    return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
  }
  if (type.dtype === 'BF16') return bf16Bytes(f32);
  throw new InvalidArgumentError(`cannot convert float values to ${type.name}`);
}

/** f32 → bf16 as ggml_fp32_to_bf16_row_ref: round to nearest even, NaN kept quiet. */
function bf16Bytes(f32: Float32Array): Uint8Array {
  const u = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 64 : (x + (0x7fff + ((x >>> 16) & 1))) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

async function* chunks(total: number, size: number, read: (o: number, n: number) => Promise<Uint8Array>, signal: AbortSignal | undefined, name: string): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < total; o += size) {
    throwIfAborted(signal, `writing ${name}`);
    yield await read(o, Math.min(size, total - o));
  }
}
