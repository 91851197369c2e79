// AutoencoderTiny (TAESD layout) vs diffusers (reference/taesd.*, model models/tiny-taesd): every
// decode and encode case the reference JSON lists, in f32 (rel-L2 ≤ 1e-4) and f16 (≤ 2e-2), the
// fp16 weight variant, the pipeline scaling, and exact tiled vs whole.
import { afterAll, describe, expect, it } from 'vitest';
import { type Tensor } from '@ssd/tensor';
import { AutoencoderTiny } from '@ssd/vae';
import { maxAbsDiff, relL2, testContext } from '../../../testing/index.js';
import { readNhwc, referenceFile, referenceJson, taesdModelDir } from './fixtures.js';

const ctx = await testContext();
const json = await referenceJson('taesd');
const ref = await referenceFile('taesd');
const has = (name: string) => json.tensors.some((t) => t.name === name);

const tiny32 = await AutoencoderTiny.fromPretrained(taesdModelDir, { context: ctx, dtype: 'f32' });
const tiny16 = ctx.f16 ? await AutoencoderTiny.fromPretrained(taesdModelDir, { context: ctx }) : null;
afterAll(() => {
  tiny32.dispose();
  tiny16?.dispose();
});

async function upload(name: string): Promise<Tensor> {
  const x = await readNhwc(ref, name);
  return ctx.fromData(x.data, x.shape, 'f32', name);
}

describe('AutoencoderTiny', () => {
  it('defaults to f16 (force_upcast false) when the device has shader-f16', () => {
    expect(tiny16?.dtype ?? 'f16').toBe('f16');
    expect(tiny32.scalingFactor).toBe(1);
    expect(tiny32.vaeScaleFactor).toBe(8);
  });

  for (const { name } of json.decode_cases ?? []) {
    for (const dtype of ['f32', 'f16'] as const) {
      it.runIf(dtype === 'f32' || ctx.f16)(`decode ${name} ${dtype}`, async () => {
        const model = dtype === 'f32' ? tiny32 : tiny16!;
        const latents = await upload(`${name}.latents`);
        const { sample, tiling } = await model.decode(latents);
        const expected = await readNhwc(ref, `${name}.image`);
        expect(sample.shape).toEqual(expected.shape);
        expect(tiling.tiled).toBe(false);
        const err = relL2((await sample.read()) as Float32Array, expected.data);
        console.log(`taesd decode ${name} ${dtype}: rel-L2 ${err.toExponential(2)}`);
        expect(err).toBeLessThanOrEqual(dtype === 'f32' ? 1e-4 : 2e-2);
        sample.dispose();
        latents.dispose();
      });
    }
  }

  for (const { name } of json.encode_cases ?? []) {
    for (const dtype of ['f32', 'f16'] as const) {
      it.runIf(dtype === 'f32' || ctx.f16)(`encode ${name} ${dtype}`, async () => {
        const model = dtype === 'f32' ? tiny32 : tiny16!;
        const image = await upload(`${name}.image`);
        const { latents } = await model.encode(image);
        const expected = await readNhwc(ref, `${name}.latents`);
        expect(latents.shape).toEqual(expected.shape);
        const got = (await latents.read()) as Float32Array;
        const err = relL2(got, expected.data);
        console.log(`taesd encode ${name} ${dtype}: rel-L2 ${err.toExponential(2)}`);
        expect(err).toBeLessThanOrEqual(dtype === 'f32' ? 1e-4 : 2e-2);
        // pipeline latents = latents × scaling_factor (1.0 for TAESD)
        const scaled = (await (await model.encodeLatents(image)).read()) as Float32Array;
        expect(maxAbsDiff(scaled, got)).toBeLessThan(1e-6);
        image.dispose();
        latents.dispose();
      });
    }
  }

  it('the fp16 weight variant in f32 matches diffusers\' fp16w outputs', async () => {
    const cases = (json.decode_cases ?? []).filter((c) => has(`${c.name}.fp16w.image`));
    if (!cases.length) return;
    const model = await AutoencoderTiny.fromPretrained(taesdModelDir, { context: ctx, dtype: 'f32', variant: 'fp16', parts: 'decoder' });
    try {
      for (const { name } of cases) {
        const latents = await upload(`${name}.latents`);
        const { sample } = await model.decode(latents);
        expect(relL2((await sample.read()) as Float32Array, (await readNhwc(ref, `${name}.fp16w.image`)).data)).toBeLessThanOrEqual(1e-4);
        sample.dispose();
        latents.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it('exact tiled decode equals the whole decode (diffusers-style blend reported beside it)', async () => {
    const name = json.decode_cases![0].name;
    const latents = await upload(`${name}.latents`);
    const [, h, w] = latents.shape;
    const whole = await tiny32.decode(latents, { tiling: 'never' });
    const a = (await whole.sample.read()) as Float32Array;
    const tile = Math.max(4, Math.floor(Math.max(h, w) / 2 / 4) * 4);
    for (const tileMode of ['exact', 'blend'] as const) {
      const tiled = await tiny32.decode(latents, { tiling: 'always', tileLatentSize: tile, tileMode });
      expect(tiled.tiling).toMatchObject({ mode: tileMode, tiled: true });
      expect(tiled.tiling.tiles).toBeGreaterThan(1);
      const b = (await tiled.sample.read()) as Float32Array;
      console.log(`taesd tiled (${tileMode}, ${tiled.tiling.tiles} tiles of ${tile}) vs whole: max |Δ| ${maxAbsDiff(a, b).toExponential(2)}, rel-L2 ${relL2(b, a).toExponential(2)}`);
      if (tileMode === 'exact') expect(relL2(b, a)).toBeLessThanOrEqual(1e-5);
      tiled.sample.dispose();
    }
    for (const t of [latents, whole.sample]) t.dispose();
  });
});
