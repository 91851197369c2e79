// WeightStore and quantized entries: `allowQuantized` hands a module the file's blocks (a u32 tensor,
// byte for byte, stacked q/k/v laid end to end even when a part is not 4-byte sized, a flattened conv whose
// rows end mid-block as one block stream); without it the entry is dequantized on the host into the
// store's dtype; shapes are checked either way.
import { describe, expect, it } from 'vitest';
import {
  BlobSource, CheckpointError, dequantizeBlocks, encodeSafetensors, f16ArrayToF32, f32ArrayToF16, ggmlTypeByName, GgufFile, quantizeBlocks, SafetensorsFile,
  WeightStore, writeGguf, type QuantizedWeight, type Tensor, type TensorEntry,
} from '@ssd/tensor';
import { MemoryByteSink, poisonPool, randomArray, testContext } from '../../../testing/index.js';

const TENSORS: [string, string, number[]][] = [
  ['lin.weight', 'q8_0', [5, 64]], // 5 rows × 2 blocks × 34 bytes = 340 bytes
  ['q.weight', 'q8_0', [3, 32]], // 102 bytes: parts of a stack not 4-byte sized
  ['k.weight', 'q8_0', [3, 32]],
  ['v.weight', 'q8_0', [3, 32]],
  ['k4.weight', 'q4_K', [3, 256]],
  ['conv.weight', 'q5_0', [2, 1, 1, 32]],
  ['norm.weight', 'q4_0', [64]],
  ['lin.bias', 'f16', [5]],
  ['flat.weight', 'q4_K', [8, 32, 3, 3]], // stored [9, 256] as ComfyUI-GGUF flattens it: rows end mid-block
];
const STORED: Record<string, number[]> = { 'flat.weight': [9, 256] };

async function gguf(): Promise<{ file: GgufFile; values: Record<string, Float32Array> }> {
  const values = Object.fromEntries(TENSORS.map(([k, , s], i) => [k, randomArray(s.reduce((a, b) => a * b), `gw${i}`)]));
  const st = await SafetensorsFile.open(new BlobSource(new Blob([encodeSafetensors(Object.fromEntries(TENSORS.map(([k, , shape]) => [k, { dtype: 'F32', shape, data: values[k] }]))) as BlobPart])));
  const sink = new MemoryByteSink();
  await writeGguf(sink, TENSORS.map(([name, type]) => ({ name, entry: st.get(name)! as TensorEntry, type: ggmlTypeByName(type)!, storedShape: STORED[name] })));
  return { file: await GgufFile.open(new BlobSource(new Blob([sink.bytes as BlobPart]), 'w.gguf')), values };
}

const bytesOf = async (t: Tensor, n: number) => new Uint8Array(((await t.read()) as Uint32Array).buffer).slice(0, n);
const blocks = (type: string, x: Float32Array) => quantizeBlocks(ggmlTypeByName(type)!.quant!, x);

describe('WeightStore with quantized entries', () => {
  it('allowQuantized: QuantizedWeights holding the blocks byte for byte; the rest loads as before', async () => {
    const ctx = await testContext();
    const { file, values } = await gguf();
    poisonPool(ctx, 1024);
    const store = new WeightStore(ctx, [file], 'f32');
    const lin = store.take('lin.weight', [5, 64], { allowQuantized: true }) as QuantizedWeight;
    const qkv = store.takeStacked(['q.weight', 'k.weight', 'v.weight'], [[3, 32], [3, 32], [3, 32]], { allowQuantized: true }) as QuantizedWeight;
    const k4 = store.take('k4.weight', [3, 256], { allowQuantized: true }) as QuantizedWeight;
    // a conv's PyTorch shape [O, I, kh, kw] is the one given as fileShape
    const conv = store.take('conv.weight', [2, 1, 1, 32], { allowQuantized: true, fileShape: [2, 1, 1, 32] }) as QuantizedWeight;
    const norm = store.take('norm.weight', [64], { allowQuantized: true }); // 1-D: no rows of blocks, so a Tensor
    const bias = store.take('lin.bias', [5], { allowQuantized: true });
    const flat = store.take('flat.weight', [8, 3, 3, 32], { allowQuantized: true, fileShape: [8, 32, 3, 3] }) as QuantizedWeight;
    store.finish();
    const progress: number[] = [];
    await store.load({ onProgress: (p) => progress.push(p.loadedBytes) });
    expect([lin.kind, lin.type, lin.shape, lin.data.dtype]).toEqual(['quantized', 'q8_0', [5, 64], 'u32']);
    expect([qkv.type, qkv.shape, qkv.data.size]).toEqual(['q8_0', [9, 32], Math.ceil(306 / 4)]);
    expect([k4.type, k4.shape, conv.type, conv.shape]).toEqual(['q4_K', [3, 256], 'q5_0', [2, 1, 1, 32]]);
    expect(await bytesOf(lin.data, 340)).toEqual(blocks('q8_0', values['lin.weight']));
    const stacked = new Uint8Array([...blocks('q8_0', values['q.weight']), ...blocks('q8_0', values['k.weight']), ...blocks('q8_0', values['v.weight'])]);
    expect(await bytesOf(qkv.data, 308)).toEqual(new Uint8Array([...stacked, 0, 0])); // zero-padded to 4 bytes
    expect(await bytesOf(k4.data, 3 * 144)).toEqual(blocks('q4_K', values['k4.weight']));
    expect(await bytesOf(conv.data, 2 * 22)).toEqual(blocks('q5_0', values['conv.weight']));
    // one block stream over the values, whatever the rows: the kernels index it flat
    expect([flat.type, flat.shape]).toEqual(['q4_K', [8, 32, 3, 3]]);
    expect(await bytesOf(flat.data, 9 * 144)).toEqual(blocks('q4_K', values['flat.weight']));
    // a norm weight stored q4_0: dequantized on the host, into f32
    expect('kind' in norm).toBe(false);
    expect([...((await (norm as Tensor).read()) as Float32Array)]).toEqual([...dequantizeBlocks('q4_0', blocks('q4_0', values['norm.weight']))]);
    expect('kind' in bias).toBe(false);
    expect([...((await (bias as Tensor).read()) as Float32Array)]).toEqual([...f16ArrayToF32(f32ArrayToF16(values['lin.bias']))]);
    // progress counts the file's bytes: blocks, and the f16 bias
    expect(progress[progress.length - 1]).toBe(340 + 306 + 3 * 144 + 2 * 22 + 2 * 18 + 5 * 2 + 9 * 144);
    store.disposeAll();
    await store.close();
  });

  it('without allowQuantized every entry dequantizes into the store dtype (f16 here), chunk by chunk', async () => {
    const ctx = await testContext();
    const { file, values } = await gguf();
    const store = new WeightStore(ctx, [file], 'f16');
    const lin = store.take('lin.weight', [5, 64]);
    const qkv = store.takeStacked(['q.weight', 'k.weight', 'v.weight'], [[3, 32], [3, 32], [3, 32]]);
    store.take('k4.weight', [3, 256]);
    store.take('conv.weight', [2, 32], { alternateShapes: [[2, 1, 1, 32]] });
    store.take('norm.weight', [64]);
    store.take('lin.bias', [5]);
    store.take('flat.weight', [8, 32, 3, 3]);
    store.finish();
    await store.load();
    const f16 = (x: Float32Array) => [...f16ArrayToF32(f32ArrayToF16(x))];
    expect([...((await lin.read()) as Float32Array)]).toEqual(f16(dequantizeBlocks('q8_0', blocks('q8_0', values['lin.weight']))));
    const parts = ['q', 'k', 'v'].flatMap((p) => [...dequantizeBlocks('q8_0', blocks('q8_0', values[`${p}.weight`]))]);
    expect([...((await qkv.read()) as Float32Array)]).toEqual(f16(Float32Array.from(parts)));
    store.disposeAll();
    await store.close();
  });

  it('a quantized entry of the wrong shape is reported like any other, with or without allowQuantized', async () => {
    const ctx = await testContext();
    const { file } = await gguf();
    const store = new WeightStore(ctx, [file], 'f32', [/^(?!lin\.weight|k4\.weight)/]);
    expect('kind' in store.take('lin.weight', [5, 32], { allowQuantized: true })).toBe(false);
    store.take('k4.weight', [256, 3]);
    const e = (() => {
      try {
        store.finish();
      } catch (x) {
        return x as CheckpointError;
      }
    })();
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e!.problems.map((p) => `${p.key} ${p.kind} ${p.expected} ${p.actual}`)).toEqual(['lin.weight shape [5, 32] [5, 64]', 'k4.weight shape [256, 3] [3, 256]']);
    store.disposeAll();
    await store.close();
  });
});
