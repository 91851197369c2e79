// LoraWeight on a quantized base vs float64: y = act(x·(W + Σ cᵢ·Bᵢ·Aᵢ)ᵀ + b) + residual with W the
// dequantized blocks — a stacked linear (q8_0, three parts) and a 3×3 stride-2 conv (q4_0, OIHW blocks,
// LoCon adapters in OHWI) — in both modes (merged falls back to the side path: no float copy of a
// quantized weight exists). fuse() freezes the adapters: later coefficient changes leave the output
// alone; unfuse with every coefficient 0 gives the base quantized GEMM bit for bit.
import { describe, expect, it } from 'vitest';
import { ShapeError } from '@ssd/tensor';
import { conv2d, conv2dWeightFromOIHW } from '../src/conv2d.js';
import { linear } from '../src/matmul.js';
import { LoraWeight, type LoraMode } from '../src/nn/lora-weight.js';
import { relL2, testContext } from '../../../testing/index.js';
import { conv2dRef } from './reference/conv2d.js';
import { matmulRef } from './reference/matmul.js';
import { input } from './poisoned-run.js';
import { QUANT_TOL, randomQuantized } from './quantized-weight.js';

const ctx = await testContext();
const COEFS = [1, -0.37];

/** W + Σ c·B·A in float64; A [R, K], B [N, R], W [N, K]. */
function mergedRef(w: ArrayLike<number>, N: number, K: number, adapters: { a: ArrayLike<number>; b: ArrayLike<number>; R: number; c: number }[]): Float64Array {
  const out = Float64Array.from(w);
  for (const { a, b, R, c } of adapters) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
    let s = 0;
    for (let r = 0; r < R; r++) s += b[n * R + r] * a[r * K + k];
    out[n * K + k] += c * s;
  }
  return out;
}

describe('LoraWeight on a quantized base', () => {
  for (const mode of ['side', 'merged'] as LoraMode[]) {
    it(`lora linear q8_0 f32 ${mode} M=13 K=64 N=3×8 R=3,5 bias+gelu+residual`, async () => {
      const [M, K, N] = [13, 64, 24];
      const name = `lora q linear ${mode}`;
      const x = input(ctx, [M, K], 'f32', name + ' x');
      const { w, values } = randomQuantized(ctx, 'q8_0', [N, K], name + ' w', 'values');
      const bias = input(ctx, [N], 'f32', name + ' bias');
      const res = input(ctx, [M, N], 'f32', name + ' res');
      const layer = new LoraWeight(w, 'linear', [0, 1, 2].map((i) => ({ path: `attn.to_${'qkv'[i]}`, rowOffset: 8 * i, rows: 8 })), null, 'f32');
      layer.mode = mode;
      const adapters = [3, 5].map((R, i) => {
        const a = input(ctx, [R, K], 'f32', `${name} a${i}`);
        const b = input(ctx, [N, R], 'f32', `${name} b${i}`);
        layer.setAdapter(`ad${i}`, { down: a.t, up: b.t });
        layer.setCoefficient(`ad${i}`, COEFS[i]);
        return { a: a.v, b: b.v, R, c: COEFS[i] };
      });
      const opts = { bias: bias.t, activation: 'gelu', residual: res.t } as const;
      const ref = matmulRef(x.v, mergedRef(values, N, K, adapters), M, K, N, { bias: bias.v, activation: 'gelu', residual: res.v });
      const y = layer.linear(x.t, opts);
      const before = await y.read();
      expect(relL2(before, ref)).toBeLessThanOrEqual(QUANT_TOL.f32);
      expect(layer.extraBytes).toBe(adapters.reduce((s, a) => s + 4 * (a.R * K + N * a.R), 0) + 4 * 5 * K); // pairs + c·A of ad1

      layer.fuse();
      expect(layer.isFused).toBe(true);
      layer.setCoefficient('ad0', 5); // no effect on a fused adapter until unfuse
      const fused = layer.linear(x.t, opts);
      expect(relL2(await fused.read(), ref)).toBeLessThanOrEqual(QUANT_TOL.f32);

      layer.unfuse();
      layer.setCoefficient('ad0', 0);
      layer.setCoefficient('ad1', 0);
      const base = layer.linear(x.t, opts);
      const plain = linear(x.t, w, opts);
      expect(new Uint8Array(await base.readBytes())).toEqual(new Uint8Array(await plain.readBytes()));
      for (const t of [x.t, bias.t, res.t, y, fused, base, plain]) t.dispose();
      layer.dispose();
      w.dispose();
    });
  }

  it('lora conv2d q4_0 f32 3×3 stride 2 pad 1: LoCon down OHWI [R, 3, 3, C], up [N, R]', async () => {
    const [B, H, W, C, N, R] = [2, 7, 6, 32, 8, 3];
    const name = 'lora q conv';
    const x = input(ctx, [B, H, W, C], 'f32', name + ' x');
    const { w, values } = randomQuantized(ctx, 'q4_0', [N, C, 3, 3], name + ' w', 'values');
    const layer = new LoraWeight(w, 'conv2d', [{ path: 'conv', rowOffset: 0, rows: N }], null, 'f32');
    expect([layer.outFeatures, layer.kernelSize, layer.inFeatures, layer.reduceSize]).toEqual([N, 3, C, 9 * C]);
    expect(layer.downShape(R)).toEqual([R, 3, 3, C]);
    const aOIHW = input(ctx, [R, C, 3, 3], 'f32', name + ' a');
    const down = ctx.fromData(conv2dWeightFromOIHW(aOIHW.v, [R, C, 3, 3]).data, [R, 3, 3, C], 'f32');
    const up = input(ctx, [N, R], 'f32', name + ' b');
    expect(() => layer.setAdapter('bad', { down: aOIHW.t, up: up.t })).toThrow(ShapeError); // OIHW is not the conv's layout
    layer.setAdapter('locon', { down, up: up.t });
    layer.setCoefficient('locon', COEFS[1]);
    const geo = { stride: 2 as const, padding: [1, 1, 1, 1] as const };
    const wRef = mergedRef(values, N, C * 9, [{ a: aOIHW.v, b: up.v, R, c: COEFS[1] }]);
    const ref = conv2dRef(x.v, [B, H, W, C], wRef, [N, C, 3, 3], { ...geo, activation: 'silu' });
    const y = layer.conv2d(x.t, { ...geo, activation: 'silu' });
    expect(y.shape).toEqual(ref.shape);
    expect(relL2(await y.read(), ref.out)).toBeLessThanOrEqual(QUANT_TOL.f32);
    const plain = conv2d(x.t, w, geo);
    layer.setCoefficient('locon', 0);
    const base = layer.conv2d(x.t, geo);
    expect(new Uint8Array(await base.readBytes())).toEqual(new Uint8Array(await plain.readBytes()));
    for (const t of [x.t, aOIHW.t, y, plain, base]) t.dispose();
    layer.dispose();
    w.dispose();
  });
});
