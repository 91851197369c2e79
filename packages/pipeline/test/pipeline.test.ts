// StableDiffusionXLPipeline end to end vs diffusers: every run of reference/pipeline.* (given
// latents) and pipeline_seeded.* (seed only, the way users call diffusers; TAESD runs included), and
// img2img.*: final latents ≤ 1e-3 rel-L2 (f32) and 8-bit images within 2/255.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeFileSource, parseJsonLenient, SafetensorsFile } from '@ssd/tensor';
import { decodePng, StableDiffusionXLPipeline, type GenerateResult } from '@ssd/pipeline';
import { fixturesDir, maxAbsDiff, relL2, testContext } from '../../../testing/index.js';

const ref = (f: string) => join(fixturesDir, 'reference', f);
const pipes = new Map<string, Promise<StableDiffusionXLPipeline>>();

/** One pipeline per (model, vae, fp16 weights), sharing the test context. */
function pipeline(model: string, vae?: string, fp16Weights = false): Promise<StableDiffusionXLPipeline> {
  const key = `${model}|${vae}|${fp16Weights}`;
  let p = pipes.get(key);
  if (!p) {
    p = testContext().then((ctx) =>
      StableDiffusionXLPipeline.fromPretrained(join(fixturesDir, model), { context: ctx, dtype: 'f32', variant: fp16Weights ? 'fp16' : undefined, vae: vae ? join(fixturesDir, vae) : undefined, onNotice: () => {} }),
    );
    pipes.set(key, p);
  }
  return p;
}
afterAll(async () => {
  for (const p of pipes.values()) await (await p).dispose();
});

/** Scheduler name for {kind|class, overrides} as the fixtures record it. */
function schedulerOf(s: { kind?: string; class?: string; overrides?: Record<string, unknown> }): [string, Record<string, unknown>] {
  return [s.kind ?? s.class!, s.overrides ?? {}];
}

async function compare(label: string, st: SafetensorsFile, name: string, r: GenerateResult): Promise<void> {
  const wantLat = await st.readFloat32(`${name}.final_latents`);
  const latErr = relL2(r.latents.data, wantLat);
  const img = r.images[0];
  let imgDiff = NaN;
  const u8Key = `${name}.image_uint8`;
  const fKey = `${name}.image`;
  if (st.tensors.has(u8Key) || st.tensors.has(fKey)) {
    const want = st.tensors.has(u8Key) ? ((await st.read(u8Key)) as Uint8Array) : (await st.readFloat32(fKey)).map((v) => Math.round(v * 255));
    const got = new Uint8Array(img.width * img.height * 3);
    for (let p = 0; p < img.width * img.height; p++) for (let c = 0; c < 3; c++) got[p * 3 + c] = img.data[p * 4 + c];
    imgDiff = maxAbsDiff(got, want);
  }
  console.log(`${label}: final latents rel-L2 ${latErr.toExponential(2)}, image max |Δ| ${imgDiff}/255`);
  expect(latErr, `${label} latents`).toBeLessThanOrEqual(1e-3);
  expect(imgDiff, `${label} image`).toBeLessThanOrEqual(2);
}

describe('pipeline with given latents (reference/pipeline.*)', async () => {
  const meta = parseJsonLenient(readFileSync(ref('pipeline.json'), 'utf8'));
  for (const run of meta.runs) {
    it(run.name, async () => {
      const st = await SafetensorsFile.open(new NodeFileSource(ref('pipeline.safetensors')));
      const pipe = await pipeline(meta.model, undefined, !!run.fp16_weights);
      pipe.setScheduler(...schedulerOf(run.scheduler));
      const r = await pipe.generate({
        prompt: run.prompt,
        negativePrompt: run.negative_prompt ?? undefined,
        guidanceScale: run.guidance_scale,
        numInferenceSteps: run.steps,
        width: run.width,
        height: run.height,
        latents: await st.readFloat32(`${run.name}.input_latents`),
        seed: run.generator_seed,
        guidanceRescale: run.guidance_rescale ?? undefined,
      });
      await compare(run.name, st, run.name, r);
      await st.source.close();
    });
  }
});

describe('pipeline seeded like diffusers (reference/pipeline_seeded.*)', async () => {
  const meta = parseJsonLenient(readFileSync(ref('pipeline_seeded.json'), 'utf8'));
  for (const run of meta.runs) {
    it(run.name, async () => {
      const st = await SafetensorsFile.open(new NodeFileSource(ref('pipeline_seeded.safetensors')));
      const pipe = await pipeline(run.model ?? meta.model, run.vae?.class === 'AutoencoderTiny' ? run.vae.path : undefined);
      pipe.setScheduler(...schedulerOf(run.scheduler));
      const a = run.args;
      const r = await pipe.generate({
        prompt: a.prompt,
        negativePrompt: a.negative_prompt ?? undefined,
        guidanceScale: a.guidance_scale,
        numInferenceSteps: a.num_inference_steps,
        width: a.width,
        height: a.height,
        seed: a.seed,
        numImagesPerPrompt: a.num_images_per_prompt,
      });
      expect(r.seed).toBe(a.seed);
      await compare(run.name, st, run.name, r);
      await st.source.close();
    });
  }
});

describe('img2img (reference/img2img.*)', () => {
  it('matches diffusers StableDiffusionXLImg2ImgPipeline', async () => {
    const meta = parseJsonLenient(readFileSync(ref('img2img.json'), 'utf8'));
    const st = await SafetensorsFile.open(new NodeFileSource(ref('img2img.safetensors')));
    const pipe = await pipeline(meta.model);
    pipe.setScheduler(...schedulerOf(meta.scheduler));
    const image = decodePng(new Uint8Array(readFileSync(ref('img2img_input.png'))), 'img2img_input.png');
    const want = (await st.read('input_image_uint8')) as Uint8Array;
    for (let p = 0; p < image.width * image.height; p++) for (let c = 0; c < 3; c++) expect(image.data[p * 4 + c]).toBe(want[p * 3 + c]);
    const a = meta.args;
    const r = await pipe.img2img({ prompt: a.prompt, negativePrompt: a.negative_prompt ?? undefined, guidanceScale: a.guidance_scale, numInferenceSteps: a.num_inference_steps, strength: a.strength, seed: a.seed, image });
    expect(r.report.stepMs.length).toBe(meta.timesteps_run.length);
    await compare(meta.name, st, meta.name, r);
    await st.source.close();
  });
});

describe('previews', () => {
  it('onStep previews: linear latent map, or TAESD when it is the loaded VAE', async () => {
    const meta = parseJsonLenient<{ model: string }>(readFileSync(ref('pipeline.json'), 'utf8'));
    for (const [vae, size] of [[undefined, 8], ['models/tiny-taesd', 64]] as const) {
      const pipe = await pipeline(meta.model, vae);
      pipe.setScheduler('euler');
      const seen: number[] = [];
      await pipe.generate({
        prompt: 'a cat', width: 64, height: 64, numInferenceSteps: 3, seed: 1, preview: true, previewEvery: 2,
        onStep: ({ step, preview }) => {
          if (preview) {
            expect([preview.width, preview.height]).toEqual([size, size]);
            expect(preview.data.length).toBe(size * size * 4);
            seen.push(step);
          }
        },
      });
      expect(seen).toEqual([1, 3]); // every 2nd step and the last
    }
  });
});
