// StableDiffusionXLPipeline.fromSingleFile on the fixture SGM checkpoint (tokenizers from @ssd/clip):
// diffusers' reference/single_file f16 run, bit-identical to the folder's fp16 variant (same weights),
// low-memory mode (stage sizes from the file's directory), and a UNet-only file on a base folder.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeSafetensors, ModelLoadError, NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type GenerateOptions } from '@ssd/pipeline';
import { fixturesDir, hasFixtures, maxAbsDiff, relL2, testContext } from '../../../testing/index.js';

const FILE = 'models/single-file/tiny-ssd1b-sgm.fp16.safetensors';
const REF = 'reference/single_file.safetensors';
const tmp = mkdtempSync(join(tmpdir(), 'ssd-sf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run: GenerateOptions = { prompt: 'an isometric illustration of a tiny island', negativePrompt: 'text, watermark', seed: 3161, numInferenceSteps: 4, guidanceScale: 5, width: 128, height: 128 };

describe.skipIf(!hasFixtures(FILE, REF))('StableDiffusionXLPipeline.fromSingleFile', () => {
  it("reproduces diffusers' seeded f16 single-file run, bit for bit the folder's fp16 variant, also in low-memory mode", async () => {
    const ctx = await testContext();
    const file = join(fixturesDir, FILE);
    const pipe = await StableDiffusionXLPipeline.fromSingleFile(file, { context: ctx, dtype: 'f32', onNotice: () => {} });
    const st = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, REF)));
    try {
      const r = await pipe.generate(run);
      const err = relL2(r.latents.data, await st.readFloat32('f16.final_latents'));
      const want = (await st.read('f16.image_uint8')) as Uint8Array;
      const img = r.images[0];
      const got = new Uint8Array(img.width * img.height * 3);
      for (let p = 0; p < img.width * img.height; p++) for (let c = 0; c < 3; c++) got[p * 3 + c] = img.data[p * 4 + c];
      console.log(`single file f16: final latents rel-L2 ${err.toExponential(2)}, image max |Δ| ${maxAbsDiff(got, want)}/255`);
      // same weights as diffusers' run: only f32 summation order differs (the fp16-vs-fp32 weight effect is 3.1e-4)
      expect(err).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(2);
      // the folder's fp16 variant holds the same weights: the same latents, bit for bit
      const folder = await StableDiffusionXLPipeline.fromPretrained(join(fixturesDir, 'models/tiny-ssd1b'), { context: ctx, dtype: 'f32', variant: 'fp16', onNotice: () => {} });
      const f = await folder.generate({ ...run, outputType: 'latent' });
      await folder.dispose();
      expect([...f.latents.data]).toEqual([...r.latents.data]);
      const low = await StableDiffusionXLPipeline.fromSingleFile(file, { context: ctx, dtype: 'f32', memory: 'low', onNotice: () => {} });
      expect(low.components.stageWeightBytes!.unet).toBe(pipe.components.unet.weightBytes);
      const l = await low.generate({ ...run, outputType: 'latent' });
      await low.dispose();
      expect([...l.latents.data]).toEqual([...r.latents.data]);
    } finally {
      await pipe.dispose();
      await st.source.close();
    }
  });

  it('a UNet-only file runs on a base folder, and without one names what is missing', async () => {
    const ctx = await testContext();
    const full = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, FILE)));
    const tensors: Parameters<typeof encodeSafetensors>[0] = {};
    for (const [k, info] of full.tensors) {
      if (!k.startsWith('model.diffusion_model.')) continue;
      tensors[k] = { dtype: info.dtype as 'F16', shape: info.shape, data: (await full.readBytes(k)) as Uint8Array };
    }
    await full.source.close();
    const unetOnly = join(tmp, 'unet-only.safetensors');
    writeFileSync(unetOnly, encodeSafetensors(tensors));
    const e = await StableDiffusionXLPipeline.fromSingleFile(unetOnly, { context: ctx, dtype: 'f32', onNotice: () => {} }).catch((x) => x);
    expect(e).toBeInstanceOf(ModelLoadError);
    expect(e.message).toMatch(/text_encoder|vae/);
    const pipe = await StableDiffusionXLPipeline.fromSingleFile(unetOnly, { base: join(fixturesDir, 'models/tiny-ssd1b'), context: ctx, dtype: 'f32', variant: 'fp16', onNotice: () => {} });
    const whole = await StableDiffusionXLPipeline.fromSingleFile(join(fixturesDir, FILE), { context: ctx, dtype: 'f32', onNotice: () => {} });
    try {
      const a = await pipe.generate({ ...run, outputType: 'latent' });
      const b = await whole.generate({ ...run, outputType: 'latent' });
      expect([...a.latents.data]).toEqual([...b.latents.data]);
    } finally {
      await pipe.dispose();
      await whole.dispose();
    }
  });
});
