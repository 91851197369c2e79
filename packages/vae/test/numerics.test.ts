// Non-finite outputs are NumericalErrors naming the stage and suggesting f32 — never NaN images:
// a decoder whose weights overflow f16 in one block (found there, whole and tiled), latents beyond
// f16's range, NaN latents, and the same for the tiny autoencoder. The f32 model decodes the same
// overflowing weights without error.
import { describe, expect, it } from 'vitest';
import { NumericalError, type TensorToWrite } from '@ssd/tensor';
import { AutoencoderKL, AutoencoderTiny } from '@ssd/vae';
import { prng, testContext } from '../../../testing/index.js';
import { editedModel, klModelDir, referenceJson, taesdModelDir } from './fixtures.js';

const ctx = await testContext();
const dir = klModelDir(await referenceJson('vae'));

/** Multiplies one F32 weight by `k` (pushes that layer's outputs past f16's 65504). */
function scaled(key: string, k: number) {
  return (t: Record<string, TensorToWrite>) => {
    const src = t[key].data as Uint8Array;
    const v = new Float32Array(src.buffer.slice(src.byteOffset, src.byteOffset + src.byteLength));
    for (let i = 0; i < v.length; i++) v[i] *= k;
    t[key] = { ...t[key], data: v };
    return t;
  };
}

function latents(h: number, w: number, k = 1) {
  const r = prng(`latents ${h}x${w}`);
  return ctx.fromData(Float32Array.from({ length: h * w * 4 }, () => k * (2 * r() - 1)), [1, h, w, 4], 'f32', 'latents');
}

describe.runIf(ctx.f16)('f16 overflow → NumericalError naming the stage', () => {
  it('weights that overflow in up_blocks.1: the error names up_blocks.1.resnets.0 and suggests f32; f32 decodes', async () => {
    const src = await editedModel(dir, scaled('decoder.up_blocks.1.resnets.0.conv1.weight', 1e6));
    const vae16 = await AutoencoderKL.fromPretrained(src, { context: ctx, dtype: 'f16', parts: 'decoder', onNotice: () => {} });
    const z = latents(12, 12);
    try {
      const err = await vae16.decode(z).catch((e) => e);
      expect(err).toBeInstanceOf(NumericalError);
      expect(err.message).toMatch(/vae decoder up_blocks\.1\.resnets\.0/);
      expect(err.message).toMatch(/f32/);
      console.log(err.message);
      // tiled: the failing layer and tile are named too (exact tiling sweeps layer by layer; blended
      // tiles are re-run stage by stage)
      const exactErr = await vae16.decode(z, { tiling: 'always', tileLatentSize: 8 }).catch((e) => e);
      expect(exactErr).toBeInstanceOf(NumericalError);
      expect(exactErr.message).toMatch(/vae decoder up_blocks\.1\.resnets\.0 \(norm1, conv1\) \(tile at 0,0 px\)/);
      const blendErr = await vae16.decode(z, { tiling: 'always', tileLatentSize: 8, tileMode: 'blend' }).catch((e) => e);
      expect(blendErr).toBeInstanceOf(NumericalError);
      expect(blendErr.message).toMatch(/vae decoder up_blocks\.1\.resnets\.0 \(tile at 0,0 latent px\)/);
    } finally {
      vae16.dispose();
    }
    const vae32 = await AutoencoderKL.fromPretrained(src, { context: ctx, parts: 'decoder' });
    try {
      const { sample } = await vae32.decode(z);
      expect(((await sample.read()) as Float32Array).every(Number.isFinite)).toBe(true);
      sample.dispose();
    } finally {
      vae32.dispose();
      z.dispose();
    }
  });

  it('latents ×1e4 do not fit f16: named as the decoder input', async () => {
    const vae16 = await AutoencoderKL.fromPretrained(dir, { context: ctx, dtype: 'f16', parts: 'decoder', onNotice: () => {} });
    const z = latents(8, 8, 1e4);
    try {
      await expect(vae16.decode(z)).rejects.toThrow(/vae decoder input.*does not fit f16/);
    } finally {
      vae16.dispose();
      z.dispose();
    }
  });

  it('the tiny autoencoder in f16 with an overflowing layer names decoder layers', async () => {
    const src = await editedModel(taesdModelDir, scaled('decoder.layers.7.conv.0.weight', 1e6));
    const tiny = await AutoencoderTiny.fromPretrained(src, { context: ctx, dtype: 'f16' });
    const z = latents(8, 8);
    try {
      const err = await tiny.decode(z).catch((e) => e);
      expect(err).toBeInstanceOf(NumericalError);
      expect(err.message).toMatch(/taesd decoder layers\.7/);
    } finally {
      tiny.dispose();
      z.dispose();
    }
  });
});

describe('non-finite inputs', () => {
  it('NaN latents → NumericalError at the decoder input, not a NaN image', async () => {
    const vae = await AutoencoderKL.fromPretrained(dir, { context: ctx, parts: 'decoder' });
    const data = new Float32Array(8 * 8 * 4).fill(0.1);
    data[37] = NaN;
    const z = ctx.fromData(data, [1, 8, 8, 4], 'f32');
    try {
      const err = await vae.decode(z).catch((e) => e);
      expect(err).toBeInstanceOf(NumericalError);
      expect(err.message).toMatch(/vae decoder input.*element 37/);
    } finally {
      vae.dispose();
      z.dispose();
    }
  });
});
