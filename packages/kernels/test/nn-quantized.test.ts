// The nn blocks with quantized checkpoint entries: Linear, Conv2d (3×3 and 1×1), self- and cross-
// Attention (q/k/v and k/v stacked as blocks) and ResnetBlock2D (convs and time_emb_proj) loaded from a
// store whose weights are GGUF blocks compute what the same blocks compute from the dequantized
// weights as plain f32 entries — the float path is already checked against float64 elsewhere. f32
// throughout: the two differ only in f32 summation order (measured ≤ 3e-7 rel-L2; tolerance 1e-5).
import { describe, expect, it } from 'vitest';
import { TensorMap, WeightStore, type QuantizedWeight, type QuantType, type Tensor, type TensorEntry } from '@ssd/tensor';
import { Attention, Conv2d, Linear, ResnetBlock2D } from '../src/nn/index.js';
import { relL2, testContext } from '../../../testing/index.js';
import { input } from './poisoned-run.js';
import { dequantizeRef, randomBlocks } from './reference/quantized.js';
import { QUANT_BLOCKS } from '@ssd/tensor';

const ctx = await testContext();

/** A quantized checkpoint and its dequantized twin (F32 entries); float parameters shared. */
class Checkpoints {
  readonly quant = new Map<string, TensorEntry>();
  readonly float = new Map<string, TensorEntry>();

  weight(key: string, type: QuantType, shape: number[]): this {
    const n = shape.reduce((a, d) => a * d, 1);
    const bytes = randomBlocks(type, n / QUANT_BLOCKS[type].values, key);
    this.quant.set(key, entry(key, bytes, shape, type));
    this.float.set(key, entry(key, new Uint8Array(Float32Array.from(dequantizeRef(type, bytes)).buffer), shape));
    return this;
  }

  param(key: string, shape: number[]): this {
    const v = input(ctx, shape, 'f32', key);
    const e = entry(key, new Uint8Array(v.v.buffer.slice(0)), shape);
    v.t.dispose();
    this.quant.set(key, e);
    this.float.set(key, e);
    return this;
  }

  /** Builds `make` from each checkpoint, loads both, returns [quantized, float]. */
  async build<M>(make: (s: WeightStore) => M): Promise<[M, M, WeightStore[]]> {
    const stores = [this.quant, this.float].map((m) => new WeightStore(ctx, [new TensorMap('test.gguf', m)], 'f32'));
    const built = stores.map((s) => make(s));
    for (const s of stores) {
      s.finish();
      await s.load();
    }
    return [built[0], built[1], stores];
  }
}

function entry(key: string, bytes: Uint8Array, shape: number[], quant?: QuantType): TensorEntry {
  return { dtype: quant ? 'U8' : 'F32', shape, byteLength: bytes.byteLength, file: 'test.gguf', stored: key, read: async (o, l) => bytes.slice(o, o + l), quantized: quant && { type: quant, byteLength: bytes.byteLength, read: async (o, l) => bytes.slice(o, o + l) } };
}

const isQ = (w: unknown): w is QuantizedWeight => typeof w === 'object' && w !== null && 'kind' in w;

async function same(q: Tensor, f: Tensor): Promise<void> {
  expect(q.shape).toEqual(f.shape);
  expect(relL2(await q.read(), await f.read())).toBeLessThanOrEqual(1e-5);
  q.dispose();
  f.dispose();
}

describe('nn blocks with quantized weights', () => {
  it('Linear (q8_0, [out, in]) with bias and residual', async () => {
    const c = new Checkpoints().weight('l.weight', 'q8_0', [24, 256]).param('l.bias', [24]);
    const [q, f, stores] = await c.build((s) => new Linear(s, 'l', 256, 24));
    expect(isQ(q.weight)).toBe(true);
    const x = input(ctx, [2, 5, 256], 'f32', 'x').t;
    const r = input(ctx, [2, 5, 24], 'f32', 'r').t;
    await same(q.forward(x, { activation: 'gelu', residual: r }), f.forward(x, { activation: 'gelu', residual: r }));
    for (const s of stores) s.disposeAll();
  });

  it('Conv2d 3×3 (q8_0, OIHW blocks) and 1×1', async () => {
    const c = new Checkpoints().weight('c.weight', 'q8_0', [16, 32, 3, 3]).param('c.bias', [16]).weight('p.weight', 'q8_0', [8, 64, 1, 1]);
    const [q, f, stores] = await c.build((s) => [new Conv2d(s, 'c', 32, 16, { kernelSize: 3, padding: 1 }), new Conv2d(s, 'p', 64, 8, { kernelSize: 1, bias: false })]);
    expect(isQ(q[0].weight) && q[0].weight.shape).toEqual([16, 32, 3, 3]);
    const x = input(ctx, [2, 5, 7, 32], 'f32', 'cx').t;
    await same(q[0].forward(x, { activation: 'silu' }), f[0].forward(x, { activation: 'silu' }));
    const y = input(ctx, [1, 3, 3, 64], 'f32', 'px').t;
    await same(q[1].forward(y), f[1].forward(y));
    for (const s of stores) s.disposeAll();
  });

  it('Attention: self (q/k/v stacked) and cross (k/v stacked)', async () => {
    const c = new Checkpoints();
    for (const p of ['a1', 'a2']) {
      const kvIn = p === 'a1' ? 64 : 32;
      c.weight(`${p}.to_q.weight`, 'q8_0', [64, 64]).weight(`${p}.to_k.weight`, 'q8_0', [64, kvIn]).weight(`${p}.to_v.weight`, 'q8_0', [64, kvIn]);
      c.weight(`${p}.to_out.0.weight`, 'q8_0', [64, 64]).param(`${p}.to_out.0.bias`, [64]);
    }
    const [q, f, stores] = await c.build((s) => [
      new Attention(s, 'a2', { queryDim: 64, crossAttentionDim: 32, heads: 2, dimHead: 32 }),
      new Attention(s, 'a1', { queryDim: 64, heads: 2, dimHead: 32 }),
    ]);
    expect(isQ(q[0].kvWeight) && q[0].kvWeight.shape).toEqual([128, 32]);
    expect(isQ(q[1].qkvWeight) && q[1].qkvWeight.shape).toEqual([192, 64]);
    const x = input(ctx, [2, 6, 64], 'f32', 'ax').t;
    const context = input(ctx, [2, 5, 32], 'f32', 'actx').t;
    await same(q[0].forward(x, context), f[0].forward(x, context));
    await same(q[1].forward(x), f[1].forward(x));
    for (const s of stores) s.disposeAll();
  });

  it('ResnetBlock2D: conv1 (q4_K, rows across super-blocks), conv2, conv_shortcut and time_emb_proj quantized', async () => {
    const c = new Checkpoints();
    for (const n of ['norm1', 'norm2']) c.param(`r.${n}.weight`, [n === 'norm1' ? 32 : 64]).param(`r.${n}.bias`, [n === 'norm1' ? 32 : 64]);
    c.weight('r.conv1.weight', 'q4_K', [64, 32, 3, 3]).param('r.conv1.bias', [64]);
    c.weight('r.conv2.weight', 'q8_0', [64, 64, 3, 3]).param('r.conv2.bias', [64]);
    c.weight('r.conv_shortcut.weight', 'q8_0', [64, 32, 1, 1]).param('r.conv_shortcut.bias', [64]);
    c.weight('r.time_emb_proj.weight', 'q8_0', [64, 32]).param('r.time_emb_proj.bias', [64]);
    const [q, f, stores] = await c.build((s) => new ResnetBlock2D(s, 'r', { inChannels: 32, outChannels: 64, tembChannels: 32, groups: 8, eps: 1e-5 }));
    expect(isQ(q.time_emb_proj!.weight)).toBe(true);
    const x = input(ctx, [2, 4, 5, 32], 'f32', 'rx').t;
    const temb = input(ctx, [2, 32], 'f32', 'rt').t;
    await same(q.forward(x, temb), f.forward(x, temb));
    for (const s of stores) s.disposeAll();
  });
});
