// LoRA vs diffusers v0.26.3 (reference/lora.*, models/loras/*): the UNet forward with the LoRA in each
// key layout (kohya SGM names, kohya diffusers names, PEFT, the fp16 file) at scale 1 and at the
// per-call scale 0.6 (with diffusers' UNetMidBlock2D quirk), the merged copy and fuse/unfuse, the
// text-encoder LoRA's prompt embeddings at both scales, and unload = the base model bit for bit.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderSource, NodeFileSource, SafetensorsFile, type GpuContext, type Tensor } from '@ssd/tensor';
import { CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer } from '@ssd/clip';
import { UNet2DConditionModel } from '@ssd/unet';
import { LoraAdapters } from '../src/lora/lora-adapters.js';
import { fixturesDir, hasFixtures, relL2, testContext } from '../../../testing/index.js';

const LORAS = join(fixturesDir, 'models/loras');
const MODEL = join(fixturesDir, 'models/tiny-ssd1b');
const FILES = {
  kohya_sgm: ['lora_kohya_sgm.safetensors', 'kohya-sgm'],
  kohya_diffusers: ['lora_kohya_diffusers.safetensors', 'kohya-diffusers'],
  peft: ['lora_peft.safetensors', 'peft'],
  kohya_sgm_fp16: ['lora_kohya_sgm.fp16.safetensors', 'kohya-sgm'],
} as const;
const TE_ONLY = ['unet'] as const;
const UNET_ONLY = ['text_encoder', 'text_encoder_2'] as const;

describe.skipIf(!hasFixtures('reference/lora.safetensors', ...Object.values(FILES).map(([f]) => `models/loras/${f}`)))('LoRA vs diffusers (reference/lora)', () => {
  let ctx: GpuContext;
  let ref: SafetensorsFile;
  let unet: UNet2DConditionModel;
  let inputs: { sample: Tensor; ehs: Tensor; te: Tensor; timestep: number; timeIds: number[][] };
  let baseBytes: Uint8Array;

  const forward = () => unet.forwardNCHW({ sample: inputs.sample, timestep: inputs.timestep, encoderHiddenStates: inputs.ehs, textEmbeds: inputs.te, timeIds: inputs.timeIds });
  const noisePred = async () => {
    const out = forward();
    const v = await out.read();
    out.dispose();
    return v;
  };
  const expectClose = async (name: string, tol = 1e-4) => {
    const err = relL2(await noisePred(), await ref.readFloat32(name));
    console.log(`${expect.getState().currentTestName}: ${name} rel-L2 ${err.toExponential(2)}`);
    expect(err).toBeLessThanOrEqual(tol);
  };
  const expectBase = async () => {
    const out = forward();
    expect(new Uint8Array(await out.readBytes())).toEqual(baseBytes);
    out.dispose();
  };

  beforeAll(async () => {
    ctx = await testContext();
    ref = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, 'reference/lora.safetensors')));
    unet = await UNet2DConditionModel.fromPretrained(new FolderSource(MODEL), { context: ctx, dtype: 'f32' });
    const load = async (k: string) => ctx.fromData(await ref.readFloat32(k), ref.info(k).shape);
    const ids = await ref.readFloat32('unet.time_ids');
    inputs = {
      sample: await load('unet.sample'),
      ehs: await load('unet.encoder_hidden_states'),
      te: await load('unet.text_embeds'),
      timestep: (await ref.readFloat32('unet.timestep'))[0],
      timeIds: [[...ids.subarray(0, 6)], [...ids.subarray(6, 12)]],
    };
    const out = forward();
    baseBytes = new Uint8Array(await out.readBytes());
    out.dispose();
  });

  afterAll(async () => {
    for (const x of Object.values(inputs ?? {})) if (typeof x === 'object' && 'dispose' in x) x.dispose();
    unet?.dispose();
    await ref?.source.close();
  });

  it('the base UNet matches unet.base_noise_pred', async () => {
    await expectClose('unet.base_noise_pred');
  });

  for (const [label, [file, layout]] of Object.entries(FILES)) {
    it(`${label}: UNet at scale 1, at call scale 0.6 (mid block at 1), then unloaded = base bit for bit`, async () => {
      const adapters = new LoraAdapters({ unet });
      const info = await adapters.load(join(LORAS, file), { skip: UNET_ONLY });
      expect(info).toMatchObject({ layout, name: 'default_0', modules: { unet: 253, text_encoder: 0, text_encoder_2: 0 } });
      // the fp16 file alone moves this noise_pred by 2.2e-4 rel-L2 (rounding of the LoRA weights to f16)
      const tol = label.endsWith('fp16') ? 1e-3 : 1e-4;
      await expectClose('unet.lora_scale1.noise_pred', tol);
      adapters.setScale(0.6);
      await expectClose('unet.lora_scale0.6.noise_pred', tol);
      adapters.unload();
      expect(adapters.extraBytes).toBe(0);
      await expectBase();
    });
  }

  it('merged copies and fuse/unfuse give the same outputs; unfuse and unload restore the base', async () => {
    const adapters = new LoraAdapters({ unet });
    await adapters.load(join(LORAS, FILES.kohya_diffusers[0]), { skip: UNET_ONLY, adapterName: 'x' });
    adapters.setMode('merged');
    await expectClose('unet.lora_scale1.noise_pred');
    adapters.setScale(0.6);
    await expectClose('unet.lora_scale0.6.noise_pred');
    adapters.setMode('side');
    adapters.setScale(1);
    adapters.fuse({ scale: 1 });
    await expectClose('unet.lora_scale1.noise_pred');
    adapters.setScale(0.6); // fused layers ignore the call scale, as diffusers' fused LoRA does
    await expectClose('unet.lora_scale1.noise_pred');
    adapters.setAdapters('x', 0); // and adapter weights
    await expectClose('unet.lora_scale1.noise_pred');
    adapters.unfuse();
    await expectBase(); // weight 0 after unfuse: the base weights, untouched
    adapters.setAdapters('x', 1);
    await expectClose('unet.lora_scale0.6.noise_pred');
    adapters.fuse({ scale: 0.6 }); // fuse_lora(0.6): every layer at 0.6, the mid block too
    const fused = await noisePred();
    adapters.unfuse();
    adapters.setScale(1);
    for (const w of new Set([...unet.namedLinearLayers().values(), ...unet.namedConv2dLayers().values()].map((t) => t.weight))) {
      if (w.adapterNames.includes('x')) w.setCoefficient('x', 0.6);
    }
    expect(relL2(fused, await noisePred())).toBeLessThanOrEqual(1e-5);
    expect(relL2(fused, await ref.readFloat32('unet.lora_scale0.6.noise_pred'))).toBeGreaterThan(1e-4); // the quirk is visible at the UNet
    adapters.unload('x');
    await expectBase();
  });

  it('two adapters with set_adapters weights add up; inactive adapters do nothing', async () => {
    const adapters = new LoraAdapters({ unet });
    await adapters.load(join(LORAS, FILES.peft[0]), { skip: UNET_ONLY, adapterName: 'a' });
    await adapters.load(join(LORAS, FILES.kohya_sgm[0]), { skip: UNET_ONLY, adapterName: 'b' });
    expect([...adapters.activeAdapters]).toEqual([['a', 1]]); // the first loaded stays the active one
    await expectClose('unet.lora_scale1.noise_pred');
    adapters.setAdapters('a', 0.6);
    const single = await noisePred();
    // the same deltas at 0.25 + 0.35; adapter weights reach every layer (the mid-block quirk is the call scale's)
    adapters.setAdapters(['a', 'b'], [0.25, 0.35]);
    expect(relL2(await noisePred(), single)).toBeLessThanOrEqual(1e-5);
    expect(relL2(single, await ref.readFloat32('unet.lora_scale1.noise_pred'))).toBeGreaterThan(1e-2);
    adapters.setAdapters('b');
    await expectClose('unet.lora_scale1.noise_pred');
    adapters.unload();
    await expectBase();
  });

  it('text encoders: prompt embeddings and pooled embeddings at scale 1 and 0.6', async () => {
    const opts = { context: ctx, dtype: 'f32' as const };
    const te1 = await CLIPTextModel.fromPretrained(new FolderSource(MODEL), 'text_encoder', opts);
    const te2 = await CLIPTextModelWithProjection.fromPretrained(new FolderSource(MODEL), 'text_encoder_2', opts);
    const tok1 = await CLIPTokenizer.fromPretrained(new FolderSource(MODEL), 'tokenizer');
    const tok2 = await CLIPTokenizer.fromPretrained(new FolderSource(MODEL), 'tokenizer_2');
    const prompts = ['blurry, low quality', 'a watercolor painting of a fox in a snowy forest']; // [negative, positive]
    const embed = async () => {
      const o1 = te1.encode(prompts.map((p) => tok1.encode(p).ids));
      const o2 = te2.encode(prompts.map((p) => tok2.encode(p).ids), { pooled: true });
      const [h1, h2] = [await o1.hiddenStates.get(-2)!.read(), await o2.hiddenStates.get(-2)!.read()];
      const pooled = await o2.textEmbeds!.read();
      o1.dispose();
      o2.dispose();
      const embeds = new Float32Array(2 * 77 * 40);
      for (let r = 0; r < 2 * 77; r++) {
        embeds.set(h1.subarray(r * 16, r * 16 + 16), r * 40);
        embeds.set(h2.subarray(r * 24, r * 24 + 24), r * 40 + 16);
      }
      return { embeds, pooled };
    };
    const check = async (run: string) => {
      const { embeds, pooled } = await embed();
      for (const [name, got] of [['prompt_embeds', embeds], ['text_embeds', pooled]] as const) {
        const err = relL2(got, await ref.readFloat32(`${run}.${name}`));
        console.log(`text encoders ${run}.${name}: rel-L2 ${err.toExponential(2)}`);
        expect(err).toBeLessThanOrEqual(1e-4);
      }
    };
    try {
      await check('base');
      const base = await embed();
      for (const [file] of [FILES.kohya_sgm, FILES.peft]) {
        const adapters = new LoraAdapters({ text_encoder: te1, text_encoder_2: te2 });
        const info = await adapters.load(join(LORAS, file), { skip: TE_ONLY });
        expect(info.modules).toEqual({ unet: 0, text_encoder: 18, text_encoder_2: 24 });
        await check('kohya_sgm.scale1');
        adapters.setScale(0.6);
        await check('kohya_sgm.scale0.6');
        adapters.unload();
        const after = await embed();
        expect(after.embeds).toEqual(base.embeds);
        expect(after.pooled).toEqual(base.pooled);
      }
    } finally {
      te1.dispose();
      te2.dispose();
    }
  });
});
