// cfgBatch: classifier-free guidance's unconditional and conditional rows as one UNet batch
// ('together', diffusers) or two UNet calls ('split', low-memory mode's default). Every row's arithmetic
// is the same, so the latents must be the same — with several images per prompt (halves of 2 rows),
// an inpainting UNet's 9-channel input, and against diffusers' own seeded run in low-memory mode.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, NodeFileSource, SafetensorsFile, type GpuContext } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type GenerateOptions } from '@ssd/pipeline';
import { fixturesDir, hasFixtures, relL2, testContext } from '../../../testing/index.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
let ctx: GpuContext;
beforeAll(async () => {
  ctx = await testContext();
});

const load = (cfgBatch?: 'together' | 'split', memory: 'resident' | 'low' = 'resident') =>
  StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', memory, cfgBatch, onNotice: () => {} });

describe.skipIf(!hasFixtures('models/tiny-ssd1b'))('cfgBatch', () => {
  let together: StableDiffusionXLPipeline;
  let split: StableDiffusionXLPipeline;
  beforeAll(async () => {
    [together, split] = [await load('together'), await load('split')];
  });
  afterAll(async () => {
    await together?.dispose();
    await split?.dispose();
  });

  it('split gives the latents of one batch, also with two images per prompt', async () => {
    const o: GenerateOptions = { prompt: 'a red cube on a table', negativePrompt: 'blurry', numInferenceSteps: 3, width: 64, height: 64, seed: 5, numImagesPerPrompt: 2, guidanceScale: 6, outputType: 'latent' };
    const batches = (pipe: StableDiffusionXLPipeline) => {
      // the UNet calls a run makes, by batch size
      const unet = pipe.components.unet;
      const sizes: number[] = [];
      const forward = unet.forward.bind(unet);
      unet.forward = (input) => (sizes.push(input.sample.shape[0]), forward(input));
      return { sizes, restore: () => void (unet.forward = forward) };
    };
    const [ca, cb] = [batches(together), batches(split)];
    const [a, b] = await Promise.all([together.generate(o), split.generate(o)]).finally(() => (ca.restore(), cb.restore()));
    expect(ca.sizes).toEqual([4, 4, 4]);
    expect(cb.sizes).toEqual([2, 2, 2, 2, 2, 2]);
    expect(a.latents.shape).toEqual([2, 4, 8, 8]);
    expect(relL2(b.latents.data, a.latents.data)).toBeLessThanOrEqual(1e-6);
    // the split run must not be the unguided one (a split that dropped a half would differ by far more)
    const unguided = await together.generate({ ...o, guidanceScale: 1 });
    expect(relL2(unguided.latents.data, a.latents.data)).toBeGreaterThan(1e-3);
  });

  it('without guidance there is nothing to split: the same latents', async () => {
    const o: GenerateOptions = { prompt: 'a cube', numInferenceSteps: 2, width: 64, height: 64, seed: 3, guidanceScale: 1, outputType: 'latent' };
    expect(relL2((await split.generate(o)).latents.data, (await together.generate(o)).latents.data)).toBe(0);
  });

  it.skipIf(!hasFixtures('reference/pipeline_seeded.safetensors'))("low-memory mode splits by default and still reproduces diffusers' seeded run", async () => {
    const low = await load(undefined, 'low');
    const st = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, 'reference/pipeline_seeded.safetensors')));
    try {
      // reference/pipeline_seeded.json's euler_cfg_h128_w128 (Euler is the model's own scheduler)
      const r = await low.generate({ prompt: 'a photo of an astronaut riding a horse on the moon', negativePrompt: 'blurry, low quality', width: 128, height: 128, numInferenceSteps: 4, guidanceScale: 5, seed: 42, outputType: 'latent' });
      expect(relL2(r.latents.data, await st.readFloat32('euler_cfg_h128_w128.final_latents'))).toBeLessThanOrEqual(1e-5);
      const viaBatch = await together.generate({ prompt: 'a photo of an astronaut riding a horse on the moon', negativePrompt: 'blurry, low quality', width: 128, height: 128, numInferenceSteps: 4, guidanceScale: 5, seed: 42, outputType: 'latent' });
      expect(relL2(r.latents.data, viaBatch.latents.data)).toBeLessThanOrEqual(1e-6);
    } finally {
      await st.close();
      await low.dispose();
    }
  });

  it('an unknown cfgBatch or memory value is an InvalidArgumentError before anything loads', async () => {
    await expect(StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, cfgBatch: 'halves' as never })).rejects.toThrow(InvalidArgumentError);
    await expect(StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, memory: 'tiny' as never })).rejects.toThrow(/memory: "tiny"/);
  });
});
