// embedding (tensor and host ids, with and without positions), gatherRows and timestepEmbedding.
// timestepEmbedding is checked against torch's float32 arithmetic written out step by step, and
// against the tiny SSD-1B UNet fixture: its time_embedding and add_embedding (diffusers'
// TimestepEmbedding after Timesteps) recomputed in float64 from our sinusoids and the fixture weights
// must give the recorded debug.time_embedding / debug.add_embedding.
import { describe, expect, it } from 'vitest';
import { DTypeError, InvalidArgumentError, NodeFileSource, SafetensorsFile, ShapeError } from '@ssd/tensor';
import { embedding, gatherRows, timestepEmbedding, timestepEmbeddingValues } from '../src/embedding.js';
import { fixturesDir, prng, relL2, testContext } from '../../../testing/index.js';
import { embeddingRef, gatherRowsRef, linearRef, timestepEmbeddingRef } from './reference/embedding.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';

describe('embedding', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const [B, T, V, D, withPos] of [[2, 7, 13, 3, true], [1, 5, 11, 8, false], [2, 77, 50, 16, true]] as const) {
      const label = `embedding ${dtype} B=${B} T=${T} V=${V} D=${D}${withPos ? ' +positions' : ''}`;
      it(label, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const r = prng(label);
        const ids = Int32Array.from({ length: B * T }, () => Math.floor(r() * V));
        const table = input(ctx, [V, D], dtype, label + ' table');
        const pos = withPos ? input(ctx, [T + 2, D], dtype, label + ' pos') : undefined;
        const idT = ctx.fromData(ids, [B, T], 'i32');
        const out = await runPoisoned(ctx, B * T * D, dtype, () => embedding(idT, table.t, pos?.t));
        expect(out.out.shape).toEqual([B, T, D]);
        const ref = embeddingRef(ids, table.v, D, T, pos?.v);
        expect(relL2(out.values, ref)).toBeLessThanOrEqual(tolerance(dtype));
        expect(out.tailIntact).toBe(true);
        // host ids give the same result
        const rows = Array.from({ length: B }, (_, b) => ids.subarray(b * T, (b + 1) * T));
        const host = await embedding(rows, table.t, pos?.t).read();
        expect([...host]).toEqual([...out.values]);
      });
    }
  }

  it('host ids out of range are an error; GPU ids are clamped', async () => {
    const table = input(ctx, [4, 4], 'f32', 'clamp table');
    expect(() => embedding([[0, 4]], table.t)).toThrow(InvalidArgumentError);
    const out = await embedding(ctx.fromData([-3, 9], [1, 2], 'i32'), table.t).read();
    expect([...out]).toEqual([...table.v.subarray(0, 4), ...table.v.subarray(12, 16)]);
    expect(() => embedding(ctx.fromData([0], [1, 1], 'f32'), table.t)).toThrow(DTypeError);
    expect(() => embedding([[0, 1, 2]], table.t, ctx.empty([2, 4], 'f32'))).toThrow(ShapeError);
  });
});

describe('gatherRows', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const [B, N, C] of [[2, 7, 3], [3, 77, 16]]) {
      const label = `gatherRows ${dtype} B=${B} N=${N} C=${C}`;
      it(label, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const x = input(ctx, [B, N, C], dtype, label);
        const index = Int32Array.from({ length: B }, (_, b) => (b * 5 + 3) % N);
        const r = await runPoisoned(ctx, B * C, dtype, () => gatherRows(x.t, ctx.fromData(index, [B], 'i32')));
        expect(r.out.shape).toEqual([B, C]);
        expect(relL2(r.values, gatherRowsRef(x.v, index, N, C))).toBe(0);
        expect(r.tailIntact).toBe(true);
      });
    }
  }
});

describe('timestepEmbedding', () => {
  for (const [dim, flip, shift] of [[320, true, 0], [320, false, 1], [16, false, 0], [17, true, 1], [256, true, 0]] as const) {
    const label = `timestepEmbedding dim=${dim} flip=${flip} freq_shift=${shift}`;
    it(label, async () => {
      const t = [999, 0, 1, 421.5, 12.25];
      const e = timestepEmbedding(ctx, t, dim, { flipSinToCos: flip, freqShift: shift });
      expect(e.shape).toEqual([t.length, dim]);
      expect(e.dtype).toBe('f32');
      const got = await e.read();
      const ref = timestepEmbeddingRef(t, dim, flip, shift);
      expect(relL2(got, ref)).toBeLessThanOrEqual(1e-7);
      if (dim % 2 === 1) for (let b = 0; b < t.length; b++) expect(got[b * dim + dim - 1]).toBe(0);
    });
  }

  it('timestepEmbedding f16 dim=64', async ({ skip }) => {
    if (!ctx.f16) skip(NO_F16);
    const e = timestepEmbedding(ctx, [999, 500], 64, { flipSinToCos: true, freqShift: 0, dtype: 'f16' });
    expect(e.dtype).toBe('f16');
    expect(relL2(await e.read(), timestepEmbeddingRef([999, 500], 64, true, 0))).toBeLessThanOrEqual(5e-4);
  });

  it('rejects a zero divisor and non-finite timesteps', () => {
    expect(() => timestepEmbedding(ctx, [1], 2, { flipSinToCos: false, freqShift: 1 })).toThrow(/divides by zero/);
    expect(() => timestepEmbedding(ctx, [NaN], 8, { flipSinToCos: false, freqShift: 0 })).toThrow(InvalidArgumentError);
  });

  for (const name of ['sq16', 'rect16x24']) {
    it(`timestepEmbedding reproduces the tiny SSD-1B UNet's time and add embeddings (${name})`, async () => {
      const weights = await SafetensorsFile.open(new NodeFileSource(`${fixturesDir}/models/tiny-ssd1b/unet/diffusion_pytorch_model.safetensors`));
      const ref = await SafetensorsFile.open(new NodeFileSource(`${fixturesDir}/reference/unet_tiny-ssd1b.safetensors`));
      const w = async (k: string) => weights.readFloat32(k);
      const silu = (v: Float64Array) => v.map((x) => x / (1 + Math.exp(-x)));
      const B = 2;
      const ts = await ref.readFloat32(`${name}.timestep`);
      const timesteps = ts.length === 1 ? [ts[0], ts[0]] : [...ts]; // a scalar timestep is expanded to the batch
      // time_proj = Timesteps(16, flip_sin_to_cos=True, freq_shift=0); time_embedding = Linear-SiLU-Linear
      const tProj = timestepEmbeddingValues(timesteps, 16, { flipSinToCos: true, freqShift: 0 });
      const h = silu(linearRef(tProj, await w('time_embedding.linear_1.weight'), await w('time_embedding.linear_1.bias'), B, 16, 64));
      const temb = linearRef(h, await w('time_embedding.linear_2.weight'), await w('time_embedding.linear_2.bias'), B, 64, 64);
      expect(relL2(temb, await ref.readFloat32(`${name}.debug.time_embedding`))).toBeLessThanOrEqual(1e-5);
      // add_time_proj = Timesteps(8, True, 0) over the 6 time ids; add_embedding([text_embeds, time ids])
      const ids = await ref.readFloat32(`${name}.time_ids`);
      const idProj = timestepEmbeddingValues(ids, 8, { flipSinToCos: true, freqShift: 0 });
      const text = await ref.readFloat32(`${name}.text_embeds`);
      const addIn = new Float64Array(B * 64);
      for (let b = 0; b < B; b++) {
        addIn.set(text.subarray(b * 16, (b + 1) * 16), b * 64);
        addIn.set(idProj.subarray(b * 48, (b + 1) * 48), b * 64 + 16);
      }
      const a = silu(linearRef(addIn, await w('add_embedding.linear_1.weight'), await w('add_embedding.linear_1.bias'), B, 64, 64));
      const aemb = linearRef(a, await w('add_embedding.linear_2.weight'), await w('add_embedding.linear_2.bias'), B, 64, 64);
      expect(relL2(aemb, await ref.readFloat32(`${name}.debug.add_embedding`))).toBeLessThanOrEqual(1e-5);
    });
  }
});
