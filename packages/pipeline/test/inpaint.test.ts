// pipe.inpaint vs diffusers v0.26.3 StableDiffusionXLInpaintPipeline (reference/inpaint.*: 4-channel
// UNet at strength 0.75 and 1.0 with Euler and Euler a, the 9-channel inpainting UNet at 1.0): the
// processed and latent masks exactly, the initial, image and masked-image latents ≤ 1e-4 rel-L2, the
// 4-channel per-step blend and the 9-channel UNet input, final latents ≤ 1e-3 rel-L2, images within 2/255.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeFileSource, SafetensorsFile, TensorScope, type Tensor } from '@ssd/tensor';
import { decodePng, StableDiffusionXLPipeline, type GenerateResult } from '@ssd/pipeline';
import { gatherBatch } from '../src/batch.js';
import { downloadNCHW, GpuLatentOps, uploadNCHW } from '../src/gpu-latent-ops.js';
import { latentMask, preprocessMask } from '../src/image-processor.js';
import { prepareInpaintLatents } from '../src/inpaint.js';
import { resolveInpaint, type InpaintOptions } from '../src/inpaint-options.js';
import { prepareTimesteps } from '../src/latents.js';
import { TorchGenerator } from '../src/random/torch-generator.js';
import { createScheduler } from '../src/schedulers/index.js';
import { maxAbsDiff, relL2, testContext } from '../../../testing/index.js';
import { hasInpaintFixtures, inpaintRuns, modelFor, ref, type InpaintRun } from './inpaint-fixtures.js';

const pipes = new Map<string, Promise<StableDiffusionXLPipeline>>();
function pipeline(model: string): Promise<StableDiffusionXLPipeline> {
  let p = pipes.get(model);
  if (!p) pipes.set(model, (p = testContext().then((ctx) => StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', onNotice: () => {} }))));
  return p;
}
afterAll(async () => {
  for (const p of pipes.values()) await (await p).dispose();
});

function options(run: InpaintRun): InpaintOptions {
  const a = run.args;
  return {
    prompt: a.prompt, negativePrompt: a.negative_prompt ?? undefined, guidanceScale: a.guidance_scale, numInferenceSteps: a.steps, seed: a.seed, strength: a.strength,
    width: a.width, height: a.height,
    image: decodePng(new Uint8Array(readFileSync(ref('inpaint_image.png'))), 'inpaint_image.png'),
    maskImage: decodePng(new Uint8Array(readFileSync(ref('inpaint_mask.png'))), 'inpaint_mask.png'),
  };
}

function rgb(img: GenerateResult['images'][number]): Uint8Array {
  const out = new Uint8Array(img.width * img.height * 3);
  for (let p = 0; p < img.width * img.height; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = img.data[p * 4 + c];
  return out;
}

describe.skipIf(!hasInpaintFixtures())('inpainting (reference/inpaint.*)', () => {
  const runs = hasInpaintFixtures() ? inpaintRuns() : [];

  it('mask_processor: the PNG, the binarized mask and the latent mask exactly', async () => {
    const st = await SafetensorsFile.open(new NodeFileSource(ref('inpaint.safetensors')));
    const o = options(runs[0]);
    const png = (await st.read('inpaint_mask.uint8')) as Uint8Array;
    const m = o.maskImage as { data: Uint8ClampedArray };
    expect(Array.from(png, (_, p) => m.data[p * 4])).toEqual(Array.from(png));
    const processed = preprocessMask(o.maskImage, 192, 128, null);
    expect(maxAbsDiff(processed, await st.readFloat32('inpaint_mask.processed'))).toBe(0);
    expect(maxAbsDiff(latentMask(processed, 192, 128), await st.readFloat32('inpaint_mask.latent'))).toBe(0);
    await st.source.close();
  });

  for (const run of runs) {
    it(`${run.name}: latents and mask latents before the loop, the loop's hooks, then the whole run`, async () => {
      const st = await SafetensorsFile.open(new NodeFileSource(ref('inpaint.safetensors')));
      const pipe = await pipeline(modelFor(run));
      pipe.setScheduler(run.scheduler.class);
      const o = options(run);
      const spec = pipe.components.unetSpec;
      const { run: r, inpaint } = resolveInpaint(o, { defaultSize: 1024, latentChannels: spec.outChannels, guidanceEmbedding: false, unetInChannels: spec.inChannels });
      const ctx = pipe.ctx;
      const scheduler = createScheduler(run.scheduler.class, pipe.components.schedulerConfig);
      const { timesteps, latentTimestep } = prepareTimesteps(scheduler, r, 1000);
      expect(timesteps).toEqual(run.timesteps);
      expect(latentTimestep).toBe((await st.readFloat32(`${run.name}.latent_timestep`))[0]);
      const scope = new TensorScope();
      const ops = new GpuLatentOps(ctx);
      const at = async (name: string, t: Tensor | null, tol: number) => {
        const err = relL2(await downloadNCHW(t!), await st.readFloat32(`${run.name}.${name}`));
        console.log(`${run.name} ${name}: rel-L2 ${err.toExponential(2)}`);
        expect(err, name).toBeLessThanOrEqual(tol);
      };
      try {
        const state = { components: pipe.components, run: r, scheduler, ops, generator: new TorchGenerator(r.seed), timesteps, latentTimestep, scope };
        const prep = await prepareInpaintLatents(state, inpaint, { encodeMaskedImage: true });
        scope.track(prep.latents);
        await at('initial_latents', prep.latents, 1e-4);
        await at('masked_image_latents', prep.maskedImageLatents, 1e-4);
        if (run.unet_in_channels === 4) {
          await at('image_latents', prep.imageLatents, 1e-4);
          // the per-step blend, fed diffusers' own scheduler outputs
          for (let i = 0; i < timesteps.length; i++) {
            const out = scope.track(uploadNCHW(ctx, await st.readFloat32(`${run.name}.step${i}.latents_out`), [1, 4, 16, 24]));
            await at(`step${i}.latents_blended`, scope.track(prep.hooks.afterStep!(out, i)), 1e-5);
          }
        } else {
          const scaled = scope.track(scheduler.scaleModelInput(ops, prep.latents, timesteps[0]));
          const batched = scope.track(gatherBatch([scaled], [{ from: 0, row: 0 }, { from: 0, row: 0 }]));
          await at('step0.unet_sample', scope.track(prep.hooks.unetInput!(batched)), 1e-4);
        }
      } finally {
        scope.dispose();
      }
      const result = await pipe.inpaint(o);
      expect(result.report.stepMs.length).toBe(run.timesteps.length);
      const latErr = relL2(result.latents.data, await st.readFloat32(`${run.name}.final_latents`));
      const imgDiff = maxAbsDiff(rgb(result.images[0]), (await st.read(`${run.name}.image_uint8`)) as Uint8Array);
      console.log(`${run.name}: final latents rel-L2 ${latErr.toExponential(2)}, image max |Δ| ${imgDiff}/255`);
      expect(latErr).toBeLessThanOrEqual(1e-3);
      expect(imgDiff).toBeLessThanOrEqual(2);
      await st.source.close();
    });
  }

  it('paddingMaskCrop: the crop is generated at full size and pasted back; where the mask is 0 the original stays exact', async () => {
    const run = runs[0];
    const pipe = await pipeline(modelFor(run));
    pipe.setScheduler(run.scheduler.class);
    const o = { ...options(run), paddingMaskCrop: 8, numInferenceSteps: 2 };
    const r = await pipe.inpaint(o);
    const img = r.images[0];
    expect([img.width, img.height]).toEqual([192, 128]);
    const src = o.image as { data: Uint8ClampedArray };
    const m = o.maskImage as { data: Uint8ClampedArray };
    let kept = 0;
    let changed = 0;
    for (let p = 0; p < 192 * 128; p++) {
      const same = [0, 1, 2].every((c) => img.data[p * 4 + c] === src.data[p * 4 + c]);
      if (m.data[p * 4] === 0) expect(same).toBe(true), kept++;
      else if (m.data[p * 4] === 255 && !same) changed++;
    }
    expect(kept).toBe(18871);
    expect(changed).toBeGreaterThan(2000);
  });

  it('an inpainting UNet with generate or img2img is refused before any GPU work', async () => {
    const pipe = await pipeline(modelFor(runs.find((r) => r.unet_in_channels === 9)!));
    const live = pipe.ctx.memory.liveBytes;
    await expect(pipe.generate({ prompt: 'x', width: 64, height: 64 })).rejects.toThrow(/needs an image and a mask/);
    await expect(pipe.img2img({ prompt: 'x', image: options(runs[0]).image })).rejects.toThrow(/needs an image and a mask/);
    expect(pipe.ctx.memory.liveBytes).toBe(live);
  });
});
