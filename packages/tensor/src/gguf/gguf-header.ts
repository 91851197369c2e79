// Reading a GGUF header from a ByteSource without knowing its length: a cursor that fetches the file in
// growing chunks, and the little-endian primitives of the format (u8…u64, f32/f64, bool, strings,
// typed and nested arrays). Every length is checked against what the file can still hold before
// anything is allocated or looped over, so a corrupt count is a GgufError, never a hang or a huge read.
import type { ByteSource } from '../byte-source.js';
import { GgufError } from '../errors.js';

/** The header (key/values and tensor directory) may not exceed this many bytes. */
export const MAX_GGUF_HEADER_BYTES = 256 << 20;

export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** GGUF value types (gguf.h `enum gguf_type`) and their sizes; 8 = string, 9 = array. */
const SCALAR_BYTES: Readonly<Record<number, number>> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
export const GGUF_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'u8', 1: 'i8', 2: 'u16', 3: 'i16', 4: 'u32', 5: 'i32', 6: 'f32', 7: 'bool', 8: 'string', 9: 'array', 10: 'u64', 11: 'i64', 12: 'f64',
};

export class HeaderCursor {
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  pos = 0;

  constructor(
    readonly source: ByteSource,
    readonly fileSize: number,
  ) {}

  private get file(): string {
    return this.source.name;
  }

  /** Bytes the file holds from the cursor on. */
  get remaining(): number {
    return this.fileSize - this.pos;
  }

  private async ensure(n: number, what: string): Promise<void> {
    if (this.pos + n > this.fileSize) {
      throw new GgufError(this.file, `truncated: ${what} at byte ${this.pos} needs ${n} bytes but the file ends at ${this.fileSize}`);
    }
    if (this.pos + n > MAX_GGUF_HEADER_BYTES) {
      throw new GgufError(this.file, `the header exceeds ${MAX_GGUF_HEADER_BYTES} bytes (reading ${what} at byte ${this.pos}): not a GGUF file we can read`);
    }
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.buf.length) return;
    // refill from the cursor: at least 1 MiB, twice the last chunk, and never past the end of the file
    const want = Math.min(this.fileSize - this.pos, Math.max(n, 1 << 20, this.buf.length * 2));
    this.buf = await this.source.read(this.pos, want);
    this.bufStart = this.pos;
  }

  private async view(n: number, what: string): Promise<DataView> {
    await this.ensure(n, what);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos - this.bufStart, n);
    this.pos += n;
    return v;
  }

  async bytes(n: number, what: string): Promise<Uint8Array> {
    await this.ensure(n, what);
    const at = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(at, at + n);
  }

  async u32(what: string): Promise<number> {
    return (await this.view(4, what)).getUint32(0, true);
  }

  /** A u64 that must be a safe integer (counts, lengths, offsets, dims). */
  async u64(what: string): Promise<number> {
    const v = (await this.view(8, what)).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(this.file, `${what} = ${v} at byte ${this.pos - 8} is beyond 2^53: the file is corrupt`);
    return Number(v);
  }

  async string(what: string): Promise<string> {
    const n = await this.u64(`the length of ${what}`);
    if (n > this.remaining) throw new GgufError(this.file, `${what}: a string of ${n} bytes at byte ${this.pos} runs past the end of the file (${this.remaining} bytes left): the file is truncated or corrupt`);
    const b = await this.bytes(n, what);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      throw new GgufError(this.file, `${what} at byte ${this.pos - n} is not valid UTF-8`);
    }
  }

  /** A value of GGUF type `type` (arrays nest up to 8 deep). */
  async value(type: number, what: string, depth = 0): Promise<GgufValue> {
    if (type === 8) return this.string(what);
    if (type === 9) {
      if (depth >= 8) throw new GgufError(this.file, `${what}: arrays nested more than 8 deep`);
      const elem = await this.u32(`the element type of ${what}`);
      const n = await this.u64(`the length of ${what}`);
      const min = elem === 8 ? 8 : elem === 9 ? 12 : SCALAR_BYTES[elem];
      if (min === undefined) throw new GgufError(this.file, `${what}: unknown array element type ${elem} (known: ${Object.entries(GGUF_TYPE_NAMES).map(([k, v]) => `${k} ${v}`).join(', ')})`);
      if (n * min > this.remaining) throw new GgufError(this.file, `${what}: an array of ${n} ${GGUF_TYPE_NAMES[elem]} at byte ${this.pos} does not fit in the rest of the file (${this.remaining} bytes)`);
      const out: GgufValue[] = [];
      for (let i = 0; i < n; i++) out.push(await this.value(elem, `${what}[${i}]`, depth + 1));
      return out;
    }
    const size = SCALAR_BYTES[type];
    if (size === undefined) throw new GgufError(this.file, `${what}: unknown value type ${type} (known: ${Object.entries(GGUF_TYPE_NAMES).map(([k, v]) => `${k} ${v}`).join(', ')})`);
    const v = await this.view(size, what);
    switch (type) {
      case 0: return v.getUint8(0);
      case 1: return v.getInt8(0);
      case 2: return v.getUint16(0, true);
      case 3: return v.getInt16(0, true);
      case 4: return v.getUint32(0, true);
      case 5: return v.getInt32(0, true);
      case 6: return v.getFloat32(0, true);
      case 7: {
        const b = v.getUint8(0);
        if (b > 1) throw new GgufError(this.file, `${what}: bool value ${b} is neither 0 nor 1`);
        return b === 1;
      }
      case 10: return v.getBigUint64(0, true);
      case 11: return v.getBigInt64(0, true);
      default: return v.getFloat64(0, true);
    }
  }
}

/** A metadata value as text (numbers and bigints in decimal, arrays as JSON). */
export function ggufValueText(v: GgufValue): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
}
