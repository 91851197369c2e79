// LoraWeight vs float64: y = act(x·(W + Σ cᵢ·Bᵢ·Aᵢ)ᵀ + b) + residual for a stacked linear (three parts)
// and for convs (3×3 stride 2, and with the fused 2× upsampling; the down projection is the layer's
// own conv, the up a 1×1; and bases in conv2dWinograd's layout), two adapters (c = 1 reads A itself, c ≠ 1 a scaled copy), every epilogue,
// awkward sizes, f32 and f16, side path and merged copy. Outputs are poisoned. Then the state
// machine: fuse = the merged copy, and unfuse / coefficient 0 / delete give the base GEMM bit for bit.
import { describe, expect, it } from 'vitest';
import { DTypeError, f32ArrayToF16, ShapeError, type DType, type Tensor } from '@ssd/tensor';
import { conv2d, conv2dWeightFromOIHW } from '../src/conv2d.js';
import { linear } from '../src/matmul.js';
import { LoraWeight, type LoraMode } from '../src/nn/lora-weight.js';
import { namedLoraTargets } from '../src/nn/lora-targets.js';
import { winogradWeightFromOIHW, type WinogradTile } from '../src/winograd-weights.js';
import { relL2, testContext } from '../../../testing/index.js';
import { conv2dRef } from './reference/conv2d.js';
import { matmulRef } from './reference/matmul.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';
const COEFS = [1, -0.37];

/** W + Σ c·B·A in float64; A [R, K], B [N, R], W [N, K] (K: the flattened in-features of one row). */
function mergedRef(w: ArrayLike<number>, N: number, K: number, adapters: { a: ArrayLike<number>; b: ArrayLike<number>; R: number; c: number }[]): Float64Array {
  const out = Float64Array.from(w);
  for (const { a, b, R, c } of adapters) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
    let s = 0;
    for (let r = 0; r < R; r++) s += b[n * R + r] * a[r * K + k];
    out[n * K + k] += c * s;
  }
  return out;
}

async function bytesOf(t: Tensor): Promise<Uint8Array> {
  return new Uint8Array(await t.readBytes());
}

describe('LoraWeight vs float64', () => {
  for (const dtype of ['f32', 'f16'] as DType[]) {
    for (const mode of ['side', 'merged'] as LoraMode[]) {
      it(`lora linear ${dtype} ${mode} M=13 K=67 N=3×22 R=3,5 bias+quick_gelu+residual`, async (t) => {
        if (dtype === 'f16' && !ctx.f16) return t.skip(NO_F16);
        const [M, K, N] = [13, 67, 66];
        const name = `lora linear ${dtype} ${mode}`;
        const x = input(ctx, [M, K], dtype, name + ' x');
        const w = input(ctx, [N, K], dtype, name + ' w', -0.3, 0.3);
        const bias = input(ctx, [N], dtype, name + ' bias');
        const res = input(ctx, [M, N], dtype, name + ' res');
        const layer = new LoraWeight(w.t, 'linear', [0, 1, 2].map((i) => ({ path: `attn.to_${'qkv'[i]}`, rowOffset: 22 * i, rows: 22 })));
        layer.mode = mode;
        const adapters = [3, 5].map((R, i) => {
          const a = input(ctx, [R, K], dtype, `${name} a${i}`);
          const b = input(ctx, [N, R], dtype, `${name} b${i}`);
          layer.setAdapter(`ad${i}`, { down: a.t, up: b.t });
          layer.setCoefficient(`ad${i}`, COEFS[i]);
          return { a: a.v, b: b.v, R, c: COEFS[i] };
        });
        const wRef = mergedRef(w.v, N, K, adapters);
        const ref = matmulRef(x.v, wRef, M, K, N, { bias: bias.v, activation: 'quick_gelu', residual: res.v });
        const r = await runPoisoned(ctx, M * N, dtype, () => layer.linear(x.t, { bias: bias.t, activation: 'quick_gelu', residual: res.t }));
        expect(r.out.shape).toEqual([M, N]);
        expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance(dtype));
        expect(r.tailIntact).toBe(true);
        layer.dispose();
        for (const v of [x.t, w.t, bias.t, res.t, r.out]) v.dispose();
      });

      // a base in conv2dWinograd's layout: the side path's down conv stays direct, merged copies are transformed
      const convCases: { x: number[]; cout: number; k: number; stride: 1 | 2; up: 1 | 2; label: string; winograd?: WinogradTile }[] = [
        { x: [2, 7, 9, 5], cout: 6, k: 3, stride: 2, up: 1, label: '2×7×9×5→6 3×3 s2 pad1 per-sample-bias+residual' },
        { x: [1, 5, 4, 3], cout: 7, k: 3, stride: 1, up: 2, label: '1×5×4×3→7 3×3 up2 pad1 per-sample-bias+residual' },
        { x: [2, 7, 9, 5], cout: 6, k: 3, stride: 1, up: 1, label: '2×7×9×5→6 3×3 pad1 Winograd F(2×2) base', winograd: 2 },
        { x: [1, 5, 4, 3], cout: 7, k: 3, stride: 1, up: 2, label: '1×5×4×3→7 3×3 up2 pad1 Winograd F(4×4) base', winograd: 4 },
      ];
      for (const cc of convCases) {
        it(`lora conv2d ${dtype} ${mode} ${cc.label} R=3,5`, async (t) => {
          if (dtype === 'f16' && !ctx.f16) return t.skip(NO_F16);
          if (dtype === 'f16' && cc.winograd === 4) return t.skip('F(4×4) is f32-only');
          const [B, , , C] = cc.x;
          const N = cc.cout;
          const k = cc.k;
          const name = `lora conv ${dtype} ${mode} ${cc.label}`;
          const x = input(ctx, cc.x, dtype, name + ' x');
          const wO = input(ctx, [N, C, k, k], dtype, name + ' w', -0.3, 0.3);
          wO.t.dispose();
          const wl = cc.winograd ? winogradWeightFromOIHW(dtype === 'f16' ? f32ArrayToF16(wO.v) : wO.v, [N, C, k, k], cc.winograd) : conv2dWeightFromOIHW(wO.v, [N, C, k, k]);
          const w = ctx.fromData(wl.data, wl.shape, dtype, 'w');
          const bias = input(ctx, [B, N], dtype, name + ' bias');
          const layer = new LoraWeight(w, 'conv2d', [{ path: 'resnets.0.conv1', rowOffset: 0, rows: N }], cc.winograd);
          expect(layer.downShape(3)).toEqual([3, k, k, C]);
          layer.mode = mode;
          const adapters = [3, 5].map((R, i) => {
            const aO = input(ctx, [R, C, k, k], dtype, `${name} a${i}`);
            aO.t.dispose();
            const al = conv2dWeightFromOIHW(aO.v, [R, C, k, k]);
            const b = input(ctx, [N, R], dtype, `${name} b${i}`);
            layer.setAdapter(`ad${i}`, { down: ctx.fromData(al.data, al.shape, dtype, 'a'), up: b.t });
            layer.setCoefficient(`ad${i}`, COEFS[i]);
            return { a: aO.v, b: b.v, R, c: COEFS[i] }; // OIHW rows: the same flattening as W's OIHW rows
          });
          const wRef = mergedRef(wO.v, N, C * k * k, adapters);
          const opts = { stride: cc.stride, padding: 1, upsample: cc.up } as const;
          const ref = conv2dRef(x.v, cc.x, wRef, [N, C, k, k], { stride: cc.stride, padding: [1, 1, 1, 1], upsample: cc.up, bias: bias.v, perSampleBias: true });
          const res = input(ctx, ref.shape, dtype, name + ' res');
          for (let i = 0; i < ref.out.length; i++) ref.out[i] += res.v[i];
          const size = ref.out.length;
          const r = await runPoisoned(ctx, size, dtype, () => layer.conv2d(x.t, { ...opts, bias: bias.t, residual: res.t }));
          expect(r.out.shape).toEqual(ref.shape);
          expect(relL2(r.values, ref.out)).toBeLessThanOrEqual(tolerance(dtype));
          expect(r.tailIntact).toBe(true);
          layer.dispose();
          for (const v of [x.t, w, bias.t, res.t, r.out]) v.dispose();
        });
      }
    }
  }
});

describe('LoraWeight state', () => {
  const [M, K, N, R] = [9, 12, 10, 2];
  const setup = (seed: string) => {
    const x = input(ctx, [M, K], 'f32', seed + ' x');
    const w = input(ctx, [N, K], 'f32', seed + ' w');
    const layer = new LoraWeight(w.t, 'linear', [{ path: 'proj', rowOffset: 0, rows: N }]);
    layer.setAdapter('a', { down: input(ctx, [R, K], 'f32', seed + ' a').t, up: input(ctx, [N, R], 'f32', seed + ' b').t });
    return { x: x.t, w: w.t, layer };
  };

  it('unfuse, coefficient 0 and deleting the adapter give the base GEMM bit for bit', async () => {
    const { x, w, layer } = setup('state exact');
    const base = await bytesOf(linear(x, w));
    const wBefore = await bytesOf(w);
    expect(await bytesOf(layer.linear(x))).toEqual(base); // coefficient starts at 0
    layer.setCoefficient('a', 0.8);
    const side = await (layer.linear(x)).read();
    expect(relL2(side, await linear(x, w).read())).toBeGreaterThan(1e-3); // the adapter does something
    layer.fuse();
    expect(layer.isFused).toBe(true);
    const fused = await layer.linear(x).read();
    expect(relL2(fused, side)).toBeLessThanOrEqual(1e-6);
    layer.setCoefficient('a', 0.1); // ignored while fused
    expect(relL2(await layer.linear(x).read(), side)).toBeLessThanOrEqual(1e-6);
    layer.unfuse();
    layer.setCoefficient('a', 0);
    expect(await bytesOf(layer.linear(x))).toEqual(base);
    layer.setCoefficient('a', 0.8);
    layer.mode = 'merged';
    expect(relL2(await layer.linear(x).read(), side)).toBeLessThanOrEqual(1e-6);
    layer.fuse(); // reuses the merged copy
    layer.deleteAdapter('a'); // drops the fused copy that holds it
    expect(layer.isFused).toBe(false);
    expect(layer.adapterNames).toEqual([]);
    expect(layer.extraBytes).toBe(0);
    expect(await bytesOf(layer.linear(x))).toEqual(base);
    expect(await bytesOf(w)).toEqual(wBefore); // the base weight was never written
    layer.dispose();
  });

  it('an adapter added on top of a fused copy runs live on it', async () => {
    const { x, w, layer } = setup('state stacked');
    layer.setCoefficient('a', 1);
    const one = await layer.linear(x).read();
    layer.fuse();
    layer.setAdapter('b', { down: input(ctx, [R, K], 'f32', 'stacked a2').t, up: input(ctx, [N, R], 'f32', 'stacked b2').t });
    layer.setCoefficient('b', 0.5);
    const both = await layer.linear(x).read();
    layer.unfuse();
    layer.setCoefficient('a', 1);
    expect(relL2(await layer.linear(x).read(), both)).toBeLessThanOrEqual(1e-6);
    layer.setCoefficient('b', 0);
    expect(relL2(await layer.linear(x).read(), one)).toBeLessThanOrEqual(1e-6);
    layer.dispose();
    w.dispose();
  });

  it('mis-shaped or mis-typed adapters are ShapeError / DTypeError', () => {
    const { layer } = setup('state errors');
    expect(() => layer.setAdapter('bad', { down: ctx.empty([R, K + 1], 'f32'), up: ctx.empty([N, R], 'f32') })).toThrow(ShapeError);
    expect(() => layer.setAdapter('bad', { down: ctx.empty([R, K], 'f32'), up: ctx.empty([N, R + 1], 'f32') })).toThrow(/up must have shape \[10, 2\]/);
    expect(() => layer.setAdapter('bad', { down: ctx.empty([R, K], 'i32'), up: ctx.empty([N, R], 'f32') })).toThrow(DTypeError);
    expect(() => new LoraWeight(ctx.empty([N, K], 'f32'), 'linear', [{ path: 'p', rowOffset: 5, rows: 6 }])).toThrow(ShapeError);
  });

  it('namedLoraTargets finds every part through fields and arrays', () => {
    const w1 = new LoraWeight(ctx.empty([6, 4], 'f32'), 'linear', [{ path: 'a.to_q', rowOffset: 0, rows: 3 }, { path: 'a.to_k', rowOffset: 3, rows: 3 }]);
    const w2 = new LoraWeight(ctx.empty([5, 3, 3, 2], 'f32'), 'conv2d', [{ path: 'b.conv1', rowOffset: 0, rows: 5 }]);
    const w3 = new LoraWeight(ctx.empty([16, 5, 2], 'f32'), 'conv2d', [{ path: 'b.conv2', rowOffset: 0, rows: 5 }], 2); // Winograd layout
    const model = { blocks: [{ attn: { proj: w1 } }, { conv: { lora: w2 } }, { conv: { lora: w3 } }], again: w1, weight: ctx.empty([1], 'f32') };
    const all = namedLoraTargets(model);
    expect([...all.keys()]).toEqual(['a.to_q', 'a.to_k', 'b.conv1', 'b.conv2']);
    expect(all.get('b.conv2')).toMatchObject({ kind: 'conv2d', inFeatures: 2, outFeatures: 5, kernelSize: 3 });
    expect(all.get('a.to_k')).toMatchObject({ kind: 'linear', inFeatures: 4, outFeatures: 3, kernelSize: 1, part: { rowOffset: 3 } });
    expect(all.get('b.conv1')).toMatchObject({ kind: 'conv2d', inFeatures: 2, outFeatures: 5, kernelSize: 3 });
    expect([...namedLoraTargets(model, 'conv2d').keys()]).toEqual(['b.conv1', 'b.conv2']);
  });
});
