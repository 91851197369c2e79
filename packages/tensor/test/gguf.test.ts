// GGUF files: written by writeGguf and read back by GgufFile for every type (values, blocks, layout);
// key/values of every GGUF value type; and damaged files — each a GgufError naming the problem (and the
// tensor), raised from the header alone, never a hang, a RangeError or a read outside the file; and
// tensors stored reshaped with ComfyUI-GGUF's comfy.gguf.orig_shape (ssd quantize --quantize-convs).
import { describe, expect, it } from 'vitest';
import {
  BlobSource, dequantizeBlocks, encodeSafetensors, f16ArrayToF32, f32ArrayToF16, GGML_TYPES, ggmlTypeByName, GgufError, GgufFile, ggufHeader,
  quantizeBlocks, readEntryFloat32, rowsOfBlocks, SafetensorsFile, writeGguf, type ByteSource, type GgufTensorToWrite, type TensorEntry,
} from '@ssd/tensor';
import { MemoryByteSink as MemorySink, randomArray } from '../../../testing/index.js';

/** Bytes as a source that fails the test on any read outside the file. */
function guarded(bytes: Uint8Array, name = 'test.gguf'): ByteSource {
  const inner = new BlobSource(new Blob([bytes as BlobPart]), name);
  return {
    name,
    size: () => inner.size(),
    read: (o, n, s) => {
      if (!(o >= 0 && n >= 0 && o + n <= bytes.length)) throw new Error(`read outside the file: [${o}, ${o + n}) of ${bytes.length}`);
      return inner.read(o, n, s);
    },
    close: () => inner.close(),
  };
}

async function entriesOf(tensors: Record<string, { shape: number[]; data: Float32Array }>): Promise<Map<string, TensorEntry>> {
  const st = await SafetensorsFile.open(new BlobSource(new Blob([encodeSafetensors(Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, { dtype: 'F32', shape: t.shape, data: t.data }]))) as BlobPart])));
  return new Map(st.keys().map((k) => [k, st.get(k)!]));
}

const CASES: [string, string, number[]][] = [
  ['a.f32', 'f32', [3, 5]],
  ['b.f16', 'f16', [2, 3, 7]],
  ['c.bf16', 'bf16', [9]],
  ['d.q8_0', 'q8_0', [3, 64]],
  ['e.q4_0', 'q4_0', [5, 32]],
  ['f.q4_1', 'q4_1', [1, 96]],
  ['g.q5_0', 'q5_0', [2, 2, 32]],
  ['h.q5_1', 'q5_1', [3, 32]],
  ['i.q4_K', 'q4_K', [3, 256]],
  ['j.q5_K', 'q5_K', [2, 512]],
  ['k.q6_K', 'q6_K', [1, 1, 256]],
  ['l.conv', 'q8_0', [4, 2, 1, 32]],
];

describe('GGUF write → read', () => {
  it('round-trips every type: shapes, values (dequantized for block types) and the blocks themselves', async () => {
    const data = Object.fromEntries(CASES.map(([name, , shape], i) => [name, { shape, data: randomArray(shape.reduce((a, b) => a * b), `gguf-w${i}`, -2, 2) }]));
    const entries = await entriesOf(data);
    const plan: GgufTensorToWrite[] = CASES.map(([name, type]) => ({ name, entry: entries.get(name)!, type: ggmlTypeByName(type)! }));
    const sink = new MemorySink();
    const size = await writeGguf(sink, plan, { chunkValues: 512 });
    expect(sink.bytes.length).toBe(size);
    const g = await GgufFile.open(guarded(sink.bytes));
    expect(g.version).toBe(3);
    expect(g.keys()).toEqual(CASES.map(([n]) => n));
    expect(g.dataOffset % 32).toBe(0);
    for (const [name, type, shape] of CASES) {
      const info = g.info(name);
      expect(info.type.name, name).toBe(type);
      expect(info.shape, name).toEqual(shape.slice(shape.findIndex((d) => d !== 1))); // ggml_n_dims drops leading PyTorch 1s
      expect((info.begin - g.dataOffset) % 32).toBe(0);
      const x = data[name].data;
      const e = g.get(name)!;
      const got = await readEntryFloat32(e);
      const t = GGML_TYPES.get(info.type.id)!;
      const want = t.quant ? dequantizeBlocks(t.quant, quantizeBlocks(t.quant, x)) : type === 'f16' ? f16ArrayToF32(f32ArrayToF16(x)) : type === 'bf16' ? bf16Round(x) : x;
      expect([...got], name).toEqual([...want]);
      if (t.quant) {
        expect(e.quantized?.type).toBe(t.quant);
        expect(Buffer.from(await e.quantized!.read(0, e.quantized!.byteLength)).equals(Buffer.from(quantizeBlocks(t.quant, x))), name).toBe(true);
        // any byte range of the dequantized view, not only whole blocks
        const part = new Float32Array((await e.read(4 * 5, 4 * 40)).slice().buffer);
        expect([...part]).toEqual([...want.subarray(5, 45)]);
      } else expect(e.quantized).toBeUndefined();
    }
  });

  it('drops trailing ggml dims of 1 as ggml_n_dims does: a PyTorch [1, 32] tensor reads back as [32]', async () => {
    const entries = await entriesOf({ w: { shape: [1, 32], data: randomArray(32, 'n-dims') } });
    const sink = new MemorySink();
    await writeGguf(sink, [{ name: 'w', entry: entries.get('w')!, type: ggmlTypeByName('f32')! }]);
    expect((await GgufFile.open(guarded(sink.bytes))).info('w').shape).toEqual([32]);
  });
});

function bf16Round(x: Float32Array): Float32Array {
  const u = new Uint32Array(x.slice().buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(u.buffer);
}

/** A GGUF built field by field, to write what no writer would. */
class Raw {
  private parts: number[] = [];
  u8(...v: number[]): this {
    this.parts.push(...v);
    return this;
  }
  u32(v: number): this {
    return this.u8(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255);
  }
  u64(v: number | bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    return this.u8(...b);
  }
  str(s: string | Uint8Array): this {
    const b = typeof s === 'string' ? new TextEncoder().encode(s) : s;
    return this.u64(b.length).u8(...b);
  }
  pad(to: number): this {
    while (this.parts.length % to) this.parts.push(0);
    return this;
  }
  get length(): number {
    return this.parts.length;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** Header of `nt` tensors / `nkv` key-values. */
const head = (nt: number, nkv: number, version = 3) => new Raw().u8(71, 71, 85, 70).u32(version).u64(nt).u64(nkv);
/** A tensor directory entry. */
const tensor = (r: Raw, name: string, ne: number[], type: number, offset: number) => {
  r.str(name).u32(ne.length);
  for (const d of ne) r.u64(d);
  return r.u32(type).u64(offset);
};

describe('GGUF key/values', () => {
  it('reads every value type, arrays (of strings, nested) and general.alignment', async () => {
    const r = head(1, 16);
    const kv = (k: string, type: number, f: (r: Raw) => void) => f(r.str(k).u32(type));
    kv('u8', 0, (r) => r.u8(200));
    kv('i8', 1, (r) => r.u8(0xfe));
    kv('u16', 2, (r) => r.u8(0x34, 0x12));
    kv('i16', 3, (r) => r.u8(0xff, 0xff));
    kv('u32', 4, (r) => r.u32(4000000000));
    kv('i32', 5, (r) => r.u32(0xfffffffd));
    kv('f32', 6, (r) => r.u8(0, 0, 0xc0, 0x3f));
    kv('bool', 7, (r) => r.u8(1));
    kv('string', 8, (r) => r.str('héllo'));
    kv('u64', 10, (r) => r.u64(2n ** 60n));
    kv('i64', 11, (r) => r.u64(2n ** 64n - 5n));
    kv('f64', 12, (r) => r.u8(...new Uint8Array(new Float64Array([-2.25]).buffer)));
    kv('strings', 9, (r) => r.u32(8).u64(2).str('a').str('bc'));
    kv('nested', 9, (r) => r.u32(9).u64(2).u32(4).u64(1).u32(7).u32(0).u64(2).u8(1, 2));
    kv('empty', 9, (r) => r.u32(4).u64(0));
    kv('general.alignment', 4, (r) => r.u32(64));
    tensor(r, 't', [32, 2], 0, 0).pad(64);
    r.u8(...new Uint8Array(256));
    const g = await GgufFile.open(guarded(r.bytes()));
    const v = (k: string) => g.kv.get(k)!.value;
    expect([v('u8'), v('i8'), v('u16'), v('i16'), v('u32'), v('i32'), v('f32'), v('bool'), v('string')]).toEqual([200, -2, 0x1234, -1, 4000000000, -3, 1.5, true, 'héllo']);
    expect([v('u64'), v('i64'), v('f64')]).toEqual([2n ** 60n, -5n, -2.25]);
    expect(v('strings')).toEqual(['a', 'bc']);
    expect(v('nested')).toEqual([[7], [1, 2]]);
    expect(v('empty')).toEqual([]);
    expect(g.kv.get('nested')!.type).toBe('array');
    expect(g.alignment).toBe(64);
    expect(g.dataOffset % 64).toBe(0);
    expect(g.metadata.u64).toBe(String(2n ** 60n));
    expect(g.metadata.strings).toBe('["a","bc"]');
    expect(g.info('t').shape).toEqual([2, 32]);
  });
});

/** A one-tensor file: f32 [2, 32] at offset 0 (bytes after the header: `data`), with edits. */
function oneTensor(o: { version?: number; ne?: number[]; type?: number; offset?: number; data?: number; align?: [number, number] } = {}): Uint8Array {
  const r = head(1, o.align ? 1 : 0, o.version ?? 3);
  if (o.align) r.str('general.alignment').u32(o.align[0]).u32(o.align[1]);
  tensor(r, 'blk.w', o.ne ?? [32, 2], o.type ?? 0, o.offset ?? 0).pad(32);
  return r.u8(...new Uint8Array(o.data ?? 256)).bytes();
}

async function openError(bytes: Uint8Array): Promise<GgufError> {
  const e = await GgufFile.open(guarded(bytes)).then(() => null, (x: unknown) => x);
  if (!(e instanceof GgufError)) throw new Error(`expected a GgufError, got ${e === null ? 'a file' : String(e)}`);
  return e;
}

describe('damaged GGUF files', () => {
  it('bad magic, versions, endianness', async () => {
    expect((await openError(new TextEncoder().encode('{"a": 1}'))).message).toMatch(/bad magic.*not a GGUF file/);
    expect((await openError(new Uint8Array(0))).message).toMatch(/empty/);
    expect((await openError(oneTensor({ version: 1 }))).message).toMatch(/version 1/);
    expect((await openError(oneTensor({ version: 4 }))).message).toMatch(/unsupported GGUF version 4/);
    expect((await openError(oneTensor({ version: 3 << 24 }))).message).toMatch(/big-endian/);
  });

  it('a truncated header at any byte, and truncated data', async () => {
    const whole = oneTensor();
    for (let n = 1; n < 24 + 8 + 5 + 4 + 16 + 4 + 8; n++) expect((await openError(whole.subarray(0, n))).message, `cut at ${n}`).toMatch(/truncated|bad magic/);
    expect((await openError(oneTensor({ data: 200 }))).message).toMatch(/truncated: the tensor directory describes 256 bytes of tensor data but the file holds 200/);
  });

  it('names the tensor and the type it cannot read', async () => {
    const q2 = await openError(oneTensor({ ne: [256, 2], type: 10 }));
    expect(q2.tensor).toBe('blk.w');
    expect(q2.message).toMatch(/ggml type 10 \(q2_K\) is not supported \(supported: f32, f16, q4_0.*bf16\)/);
    expect((await openError(oneTensor({ type: 99 }))).message).toMatch(/tensor "blk.w": unknown ggml type 99/);
  });

  it('misaligned, out-of-range and overlapping offsets; rows that are not whole blocks; bad dims and alignment', async () => {
    expect((await openError(oneTensor({ offset: 8 }))).message).toMatch(/tensor "blk.w": data offset 8 is not a multiple of the alignment 32/);
    expect((await openError(oneTensor({ offset: 1 << 20 }))).message).toMatch(/blk.w.*out of range: the data section is 256 bytes/);
    expect((await openError(oneTensor({ ne: [48, 2], type: 8 }))).message).toMatch(/a row of 48 values \(ne\[0\]\) is not a whole number of q8_0 blocks of 32/);
    expect((await openError(oneTensor({ ne: [1, 1, 1, 1, 1] }))).message).toMatch(/5 dimensions/);
    expect((await openError(oneTensor({ align: [4, 48] }))).message).toMatch(/general.alignment must be a u32 power of two, found u32 48/);
    expect((await openError(oneTensor({ align: [5, 32] }))).message).toMatch(/general.alignment must be a u32 power of two, found i32 32/);
    const two = head(2, 0);
    tensor(two, 'a', [32], 0, 0);
    tensor(two, 'b', [32], 0, 128).pad(32).u8(...new Uint8Array(256));
    expect(await GgufFile.open(guarded(two.bytes())).then((g) => g.keys())).toEqual(['a', 'b']);
    const overlap = head(2, 0);
    tensor(overlap, 'a', [32], 0, 0);
    tensor(overlap, 'b', [32], 0, 96).pad(32).u8(...new Uint8Array(256));
    expect((await openError(overlap.bytes())).message).toMatch(/tensor "b": data at 96.*overlaps tensor "a" \[0, 128\)/);
    const dup = head(2, 0);
    tensor(dup, 'a', [32], 0, 0);
    tensor(dup, 'a', [32], 0, 128).pad(32).u8(...new Uint8Array(256));
    expect((await openError(dup.bytes())).message).toMatch(/tensor "a": the name appears twice/);
  });

  it('counts and lengths larger than the file fail at once (no hang, no huge allocation)', async () => {
    expect((await openError(head(0, 2 ** 40).bytes())).message).toMatch(/cannot fit in a 24-byte file/);
    expect((await openError(head(0, 1).u64(2n ** 40n).u8(1, 2, 3).bytes())).message).toMatch(/runs past the end of the file.*truncated or corrupt/);
    expect((await openError(head(0, 1).str('k').u32(9).u32(4).u64(2 ** 50).bytes())).message).toMatch(/"k": an array of \d+ u32 .* does not fit/);
    expect((await openError(head(0, 1).u64(2n ** 63n).bytes())).message).toMatch(/beyond 2\^53/);
    expect((await openError(head(0, 1).str(new Uint8Array([0xff, 0xfe])).u32(0).u8(1).bytes())).message).toMatch(/not valid UTF-8/);
    expect((await openError(head(0, 1).str('b').u32(7).u8(2).bytes())).message).toMatch(/bool value 2/);
    expect((await openError(head(0, 1).str('x').u32(13).u8(0).bytes())).message).toMatch(/unknown value type 13/);
    expect((await openError(head(0, 2).str('k').u32(0).u8(1).str('k').u32(0).u8(1).bytes())).message).toMatch(/duplicate key "k"/);
  });
});

describe('ggufHeader', () => {
  it('lays tensors out 32-byte aligned with no padding after the last one', async () => {
    const entries = await entriesOf({ a: { shape: [3], data: randomArray(3, 'h1') }, b: { shape: [2, 32], data: randomArray(64, 'h2') } });
    const { header, offsets, dataBytes } = ggufHeader([
      { name: 'a', entry: entries.get('a')!, type: ggmlTypeByName('f32')! },
      { name: 'b', entry: entries.get('b')!, type: ggmlTypeByName('q8_0')! },
    ]);
    expect(header.length % 32).toBe(0);
    expect(offsets).toEqual([0, 32]);
    expect(dataBytes).toBe(32 + 2 * 34);
  });
});

describe('reshaped tensors (comfy.gguf.orig_shape)', () => {
  it('a conv stored as rows of whole blocks reads back under its own shape, its blocks a QuantizedWeight', async () => {
    const x = randomArray(6 * 4 * 3 * 3 * 8, 'conv-rows');
    const entries = await entriesOf({ 'c.weight': { shape: [6, 32, 3, 3], data: x.subarray(0, 6 * 32 * 9) }, 'd.weight': { shape: [4, 2, 3, 3], data: x.subarray(0, 72) } });
    const sink = new MemorySink();
    await writeGguf(sink, [
      { name: 'c.weight', entry: entries.get('c.weight')!, type: ggmlTypeByName('q8_0')!, storedShape: [6, 288] },
      // ComfyUI-GGUF flattens to rows of 256 that cut across the output rows: values only, no blocks
      { name: 'd.weight', entry: entries.get('d.weight')!, type: ggmlTypeByName('f32')!, storedShape: [9, 8] },
    ]);
    const g = await GgufFile.open(guarded(sink.bytes));
    expect(g.kv.get('comfy.gguf.orig_shape.c.weight')).toEqual({ type: 'array', value: [6, 32, 3, 3] });
    expect([g.info('c.weight').ne, g.info('c.weight').shape]).toEqual([[288, 6], [6, 32, 3, 3]]);
    const c = g.get('c.weight')!;
    expect(c.quantized?.byteLength).toBe(6 * 9 * 34);
    expect(rowsOfBlocks(c.shape, 'q8_0')).toBe(true); // 288-value rows: a QuantizedWeight for the conv
    expect([...(await readEntryFloat32(c))]).toEqual([...dequantizeBlocks('q8_0', quantizeBlocks('q8_0', x.subarray(0, 6 * 32 * 9)))]);
    expect(g.info('d.weight').shape).toEqual([4, 2, 3, 3]);
    expect([...(await readEntryFloat32(g.get('d.weight')!))]).toEqual([...x.subarray(0, 72)]);
  });

  it('an orig_shape that does not hold the values is a GgufError', async () => {
    const r = head(1, 1).str('comfy.gguf.orig_shape.blk.w').u32(9).u32(5).u64(2).u32(3).u32(3);
    tensor(r, 'blk.w', [32, 2], 0, 0).pad(32).u8(...new Uint8Array(256));
    expect((await openError(r.bytes())).message).toMatch(/tensor "blk.w": comfy.gguf.orig_shape.blk.w = \[3,3\] is not a shape of its 64 values/);
  });
});
