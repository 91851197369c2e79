// LoRA and few-step generation through StableDiffusionXLPipeline against diffusers v0.26.3
// (reference/lora.*, reference/lcm.*): each layout at scale 1 and at the per-call scale (with
// diffusers' mid-block quirk), fused, unfused and unloaded (= the base, bit for bit), low-memory mode,
// the LCM-distilled UNet with its guidance embedding, and LCM-LoRA with and without CFG.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type GenerateOptions, type GenerateResult } from '@ssd/pipeline';
import { fixturesDir, hasFixtures, maxAbsDiff, relL2, testContext } from '../../../testing/index.js';

const LORAS = join(fixturesDir, 'models/loras');
const model = join(fixturesDir, 'models/tiny-ssd1b');
const HAVE = hasFixtures('reference/lora.safetensors', 'reference/lcm.safetensors', 'models/loras/lora_kohya_sgm.safetensors', 'models/tiny-lcm-unet-ssd1b/config.json');
const call: GenerateOptions = { prompt: 'a watercolor painting of a fox in a snowy forest', negativePrompt: 'blurry, low quality', numInferenceSteps: 4, guidanceScale: 5, height: 96, width: 128, seed: 3111 };

let ref: SafetensorsFile;
let lcmRef: SafetensorsFile;
beforeAll(async () => {
  if (!HAVE) return;
  ref = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, 'reference/lora.safetensors')));
  lcmRef = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, 'reference/lcm.safetensors')));
});
afterAll(async () => {
  await ref?.source.close();
  await lcmRef?.source.close();
});

async function check(r: GenerateResult, st: SafetensorsFile, name: string, tol = 1e-4): Promise<void> {
  const err = relL2(r.latents.data, await st.readFloat32(`${name}.final_latents`));
  const want = (await st.read(`${name}.image_uint8`)) as Uint8Array;
  const img = r.images[0];
  const got = new Uint8Array(img.width * img.height * 3);
  for (let p = 0; p < img.width * img.height; p++) for (let c = 0; c < 3; c++) got[p * 3 + c] = img.data[p * 4 + c];
  console.log(`${name}: final latents rel-L2 ${err.toExponential(2)}, image max |Δ| ${maxAbsDiff(got, want)}/255`);
  expect(err, name).toBeLessThanOrEqual(tol);
  expect(maxAbsDiff(got, want), name).toBeLessThanOrEqual(2);
}

describe.skipIf(!HAVE)('LoRA through the pipeline (reference/lora.*)', () => {
  let pipe: StableDiffusionXLPipeline;
  beforeAll(async () => {
    pipe = await StableDiffusionXLPipeline.fromPretrained(model, { context: await testContext(), dtype: 'f32', onNotice: () => {} });
  });
  afterAll(async () => pipe?.dispose());

  for (const file of ['lora_kohya_sgm.safetensors', 'lora_kohya_diffusers.safetensors']) {
    it(`${file}: scale 1 and the per-call scale 0.6 (UNet and text encoders; diffusers' mid-block quirk)`, async () => {
      const base = await pipe.generate(call);
      await check(base, ref, 'base');
      const info = await pipe.loadLoraWeights(join(LORAS, file));
      expect(info.modules.unet).toBeGreaterThan(0);
      expect(info.modules.text_encoder + info.modules.text_encoder_2).toBeGreaterThan(0);
      await check(await pipe.generate(call), ref, 'kohya_sgm.scale1');
      await check(await pipe.generate({ ...call, loraScale: 0.6 }), ref, 'kohya_sgm.scale0.6');
      // the per-call scale does not stick
      await check(await pipe.generate(call), ref, 'kohya_sgm.scale1');
      await pipe.unloadLoraWeights();
      expect([...(await pipe.generate(call)).latents.data]).toEqual([...base.latents.data]);
    });
  }

  it('fuse_lora(0.6), unfuse (the base, bit for bit, and diffusers\' unfused run), fp16 file, PEFT layout', async () => {
    const base = await pipe.generate(call);
    await pipe.loadLoraWeights(join(LORAS, 'lora_kohya_sgm.safetensors'), { adapterName: 'sgm' });
    await pipe.fuseLora({ loraScale: 0.6 });
    await check(await pipe.generate(call), ref, 'fused_scale0.6');
    await pipe.unfuseLora();
    await pipe.unloadLoraWeights();
    const unfused = await pipe.generate(call);
    expect([...unfused.latents.data]).toEqual([...base.latents.data]);
    await check(unfused, ref, 'unfused');
    await pipe.loadLoraWeights(join(LORAS, 'lora_kohya_sgm.fp16.safetensors'));
    await check(await pipe.generate(call), ref, 'kohya_sgm.scale1'); // fp16 file: 5.4e-5 from the f32 one
    await pipe.unloadLoraWeights();
    await pipe.loadLoraWeights(join(LORAS, 'lora_peft.safetensors'));
    await check(await pipe.generate(call), ref, 'peft_merged.scale1');
    await pipe.fuseLora({ loraScale: 0.6 });
    await check(await pipe.generate(call), ref, 'peft_merged.scale0.6');
    await pipe.unloadLoraWeights();
  });

  it('two adapters with setAdapters weights equal one adapter at the summed weight', async () => {
    await pipe.loadLoraWeights(join(LORAS, 'lora_kohya_sgm.safetensors'), { adapterName: 'a' });
    await pipe.loadLoraWeights(join(LORAS, 'lora_kohya_diffusers.safetensors'), { adapterName: 'b' });
    await pipe.setAdapters(['a', 'b'], [0.3, 0.3]);
    const two = await pipe.generate(call);
    await pipe.setAdapters('a', 0.6);
    const one = await pipe.generate(call);
    expect(relL2(two.latents.data, one.latents.data)).toBeLessThanOrEqual(1e-5);
    await pipe.unloadLoraWeights();
  });
});

describe.skipIf(!HAVE)('LoRA in low-memory mode', () => {
  it('matches diffusers and frees the adapters with each stage; a file that is not a LoRA is refused at load', async () => {
    const ctx = await testContext();
    const low = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', memory: 'low', onNotice: () => {} });
    try {
      const before = ctx.memory.liveBytes;
      await low.loadLoraWeights(join(LORAS, 'lora_kohya_sgm.safetensors'));
      const r = await low.generate({ ...call, loraScale: 0.6 });
      await check(r, ref, 'kohya_sgm.scale0.6');
      expect(ctx.memory.liveBytes).toBe(before);
      const bad = await low.loadLoraWeights(join(fixturesDir, 'models/tiny-sdxl-unet/diffusion_pytorch_model.safetensors')).catch((x) => x);
      expect(bad.message).toMatch(/LoRA|lora/);
    } finally {
      await low.dispose();
    }
  });
});

describe.skipIf(!HAVE)('few-step generation (reference/lcm.*)', () => {
  it('the LCM-distilled UNet (unet=…) at guidance 8: no CFG batch, the guidance embedding instead', async () => {
    const ctx = await testContext();
    const pipe = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', unet: join(fixturesDir, 'models/tiny-lcm-unet-ssd1b'), scheduler: 'lcm', onNotice: () => {} });
    try {
      const r = await pipe.generate({ prompt: 'a photo of a red vintage car on a coastal road', numInferenceSteps: 4, guidanceScale: 8, height: 128, width: 96, seed: 3141 });
      await check(r, lcmRef, 'lcm_unet_g8');
    } finally {
      await pipe.dispose();
    }
  });

  it('LCM-LoRA + LCMScheduler at guidance 1.0 (no CFG) and 1.5 (CFG)', async () => {
    const ctx = await testContext();
    const pipe = await StableDiffusionXLPipeline.fromPretrained(model, { context: ctx, dtype: 'f32', scheduler: 'lcm', onNotice: () => {} });
    try {
      await pipe.loadLoraWeights(join(LORAS, 'lcm_lora_kohya_diffusers.fp16.safetensors'));
      const common = { prompt: 'a cozy reading nook with plants, soft light', numInferenceSteps: 4, height: 96, width: 128 };
      await check(await pipe.generate({ ...common, guidanceScale: 1, seed: 3142 }), lcmRef, 'lcm_lora_g1');
      await check(await pipe.generate({ ...common, negativePrompt: 'dark, grainy', guidanceScale: 1.5, seed: 3143 }), lcmRef, 'lcm_lora_g1p5');
    } finally {
      await pipe.dispose();
    }
  });
});
