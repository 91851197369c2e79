// Synthetic safetensors files: a header built from a key list (name + shape) and tensor data
// generated on demand from a stateless hash of (seed, tensor, element), so any byte range can be read
// at random without the file existing. Values are "well scaled" like a fresh PyTorch init: weights
// uniform in ±1/√fan_in, norm weights ≈ 1, biases and embeddings small. Used for real-size models on
// machines without the weights (tests, benchmarks, `make-random-model`).

import type { ByteSource } from './byte-source.js';
import { f32BitsToF16Bits, shapeSize } from './dtype.js';
import { SafetensorsError, throwIfAborted } from './errors.js';

export interface KeyShape {
  key: string;
  shape: number[];
}

/** Parses the reference key lists: `name<TAB>[d0, d1, …]` per line, `#` comments. */
export function parseKeyList(text: string): KeyShape[] {
  const out: KeyShape[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const m = /^(\S+)\s+\[([\d,\s]*)\]$/.exec(t);
    if (!m) throw new Error(`key list: cannot parse line "${t}"`);
    out.push({ key: m[1], shape: m[2].trim() ? m[2].split(',').map((d) => Number(d.trim())) : [] });
  }
  return out;
}

type Kind = 'matrix' | 'norm' | 'bias' | 'embedding';

function kindOf(key: string, shape: number[]): Kind {
  if (/embedding\.weight$|position_embedding|token_embedding/.test(key)) return 'embedding';
  if (key.endsWith('.bias')) return 'bias';
  if (shape.length <= 1) return /norm|ln_|layer_norm|group_norm/.test(key) ? 'norm' : 'bias';
  return 'matrix';
}

interface Entry {
  key: string;
  shape: number[];
  begin: number;
  end: number;
  kind: Kind;
  scale: number;
  salt: number;
}

/** A random-access synthetic safetensors file (F16 or F32). */
export class SyntheticSafetensorsSource implements ByteSource {
  readonly header: Uint8Array;
  private readonly entries: Entry[];
  private readonly dataStart: number;
  private readonly total: number;
  private readonly el: number;

  constructor(
    readonly name: string,
    keys: readonly KeyShape[],
    readonly dtype: 'F16' | 'F32' = 'F16',
    readonly seed = 1,
  ) {
    this.el = dtype === 'F16' ? 2 : 4;
    let off = 0;
    const json: Record<string, unknown> = { __metadata__: { format: 'pt', generator: '@ssd synthetic weights' } };
    this.entries = keys.map(({ key, shape }, i) => {
      const bytes = shapeSize(shape) * this.el;
      const e: Entry = { key, shape, begin: off, end: off + bytes, kind: kindOf(key, shape), scale: 1, salt: hash32(i * 0x9e3779b1 + seed) };
      const fanIn = shape.length > 1 ? shapeSize(shape.slice(1)) : 1;
      e.scale = e.kind === 'matrix' ? 1 / Math.sqrt(fanIn) : e.kind === 'embedding' ? 0.02 : e.kind === 'norm' ? 0.1 : 0.02;
      json[key] = { dtype, shape, data_offsets: [off, off + bytes] };
      off += bytes;
      return e;
    });
    let text = JSON.stringify(json);
    text += ' '.repeat((8 - ((8 + text.length) % 8)) % 8); // align the data section to 8 bytes
    const body = new TextEncoder().encode(text);
    this.header = new Uint8Array(8 + body.length);
    new DataView(this.header.buffer).setBigUint64(0, BigInt(body.length), true);
    this.header.set(body, 8);
    this.dataStart = this.header.length;
    this.total = this.dataStart + off;
  }

  async size(): Promise<number> {
    return this.total;
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    throwIfAborted(signal);
    if (offset < 0 || offset + length > this.total) throw new SafetensorsError(this.name, `read of ${length} bytes at ${offset} is past the end (${this.total})`);
    const out = new Uint8Array(length);
    const end = offset + length;
    // header part
    if (offset < this.dataStart) out.set(this.header.subarray(offset, Math.min(end, this.dataStart)), 0);
    // data part: every entry overlapping [offset, end)
    let lo = 0;
    let hi = this.entries.length;
    const dataOff = Math.max(offset, this.dataStart) - this.dataStart;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.entries[mid].end <= dataOff) lo = mid + 1;
      else hi = mid;
    }
    const el = this.el;
    const scratch = new Uint8Array(4);
    const sdv = new DataView(scratch.buffer);
    const dv = new DataView(out.buffer);
    for (let i = lo; i < this.entries.length; i++) {
      const e = this.entries[i];
      const a = this.dataStart + e.begin;
      if (a >= end) break;
      const from = Math.max(a, offset);
      const to = Math.min(this.dataStart + e.end, end);
      const first = Math.floor((from - a) / el);
      const last = Math.ceil((to - a) / el);
      for (let idx = first; idx < last; idx++) {
        const p = a + idx * el;
        const v = valueAt(e, idx);
        if (p >= from && p + el <= to) {
          // whole element inside the range (the common case)
          if (el === 2) dv.setUint16(p - offset, f32BitsToF16Bits(f32Bits(v)), true);
          else dv.setFloat32(p - offset, v, true);
          continue;
        }
        if (el === 2) sdv.setUint16(0, f32BitsToF16Bits(f32Bits(v)), true);
        else sdv.setFloat32(0, v, true);
        for (let k = 0; k < el; k++) if (p + k >= from && p + k < to) out[p + k - offset] = scratch[k];
      }
    }
    return out;
  }

  async close(): Promise<void> {}

  /** Total parameter count. */
  get parameterCount(): number {
    return this.entries.reduce((a, e) => a + shapeSize(e.shape), 0);
  }
}

function valueAt(e: Entry, idx: number): number {
  const u = hash32((idx * 0x85ebca6b) ^ e.salt) / 4294967296; // [0, 1)
  const s = 2 * u - 1; // [-1, 1)
  if (e.kind === 'norm') return 1 + e.scale * s;
  return e.scale * s;
}

/** murmur3's 32-bit finaliser: a good stateless hash of an integer. */
function hash32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function f32Bits(v: number): number {
  f32[0] = v;
  return u32[0];
}
