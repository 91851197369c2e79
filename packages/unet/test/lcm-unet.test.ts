// UNets with time_cond_proj_dim (LCM-distilled, e.g. latent-consistency/lcm-ssd-1b) vs diffusers
// (reference/lcm.*, models/tiny-lcm-unet-ssd1b): the guidance-scale embedding exactly as
// get_guidance_scale_embedding makes it, and the UNet forward with timestep_cond through
// time_embedding.cond_proj, in f32 and f16; timestepCond on a UNet without cond_proj is an error.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderSource, InvalidArgumentError, NodeFileSource, SafetensorsFile, ShapeError, type GpuContext } from '@ssd/tensor';
import { guidanceScaleEmbedding, UNet2DConditionModel } from '@ssd/unet';
import { fixturesDir, hasFixtures, relL2, testContext } from '../../../testing/index.js';

const MODEL = join(fixturesDir, 'models/tiny-lcm-unet-ssd1b');

describe.skipIf(!hasFixtures('reference/lcm.safetensors', 'models/tiny-lcm-unet-ssd1b/diffusion_pytorch_model.safetensors'))('LCM UNet (time_cond_proj_dim) vs diffusers', () => {
  let ctx: GpuContext;
  let ref: SafetensorsFile;
  beforeAll(async () => {
    ctx = await testContext();
    ref = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, 'reference/lcm.safetensors')));
  });
  afterAll(async () => {
    await ref?.source.close();
  });

  it('guidanceScaleEmbedding(w, 32) equals get_guidance_scale_embedding', async () => {
    for (const [name, w] of [['lcm_unet_g8.timestep_cond', [7]], ['unet.timestep_cond', [7, 7]]] as const) {
      const got = guidanceScaleEmbedding(w, 32);
      const want = await ref.readFloat32(name);
      expect(got.length).toBe(want.length);
      // torch's vectorised float32 exp (Sleef) is 1 ulp off the correctly rounded one for 2 of the 16
      // frequencies; times w·1000 = 7000 that moves the argument by 1 ulp (1.2e-4) and sin/cos by as much
      const maxAbs = Math.max(...got.map((v, i) => Math.abs(v - want[i])));
      expect(maxAbs, name).toBeLessThanOrEqual(2e-4);
      expect(relL2(got, want), name).toBeLessThanOrEqual(5e-5);
    }
    const odd = guidanceScaleEmbedding([0.5], 7); // odd widths are zero-padded
    expect(odd.length).toBe(7);
    expect(odd[6]).toBe(0);
    expect(odd[3]).toBe(Math.fround(Math.cos(500))); // half = 3: [sin ×3, cos ×3, 0]; the first frequency is 1
  });

  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype}: noise_pred with timestep_cond within ${dtype === 'f32' ? '1e-4' : '2e-2'} rel-L2`, async (t) => {
      if (dtype === 'f16' && !ctx.f16) return t.skip('no shader-f16');
      const unet = await UNet2DConditionModel.fromPretrained(new FolderSource(MODEL), { subfolder: '', context: ctx, dtype });
      expect(unet.spec.timeCondProjDim).toBe(32);
      const load = async (k: string) => ctx.fromData(await ref.readFloat32(k), ref.info(k).shape);
      const [sample, ehs, te, cond] = await Promise.all(['unet.sample', 'unet.encoder_hidden_states', 'unet.text_embeds', 'unet.timestep_cond'].map(load));
      const ids = await ref.readFloat32('unet.time_ids');
      const input = { sample, timestep: [...(await ref.readFloat32('unet.timestep'))], encoderHiddenStates: ehs, textEmbeds: te, timeIds: [[...ids.subarray(0, 6)], [...ids.subarray(6)]] };
      const out = unet.forwardNCHW({ ...input, timestepCond: cond });
      const err = relL2(await out.read(), await ref.readFloat32('unet.noise_pred'));
      console.log(`LCM UNet ${dtype}: noise_pred rel-L2 ${err.toExponential(2)}`);
      expect(err).toBeLessThanOrEqual(dtype === 'f32' ? 1e-4 : 2e-2);
      // our own embedding of w = 7 gives the same noise_pred within the tolerance
      const own = ctx.fromData(guidanceScaleEmbedding([7, 7], 32), [2, 32]);
      const withOwn = unet.forwardNCHW({ ...input, timestepCond: own });
      expect(relL2(await withOwn.read(), await ref.readFloat32('unet.noise_pred'))).toBeLessThanOrEqual(dtype === 'f32' ? 1e-4 : 2e-2);
      own.dispose();
      withOwn.dispose();
      // without the condition cond_proj adds nothing (diffusers: `if condition is not None`): a different output
      const plain = unet.forwardNCHW(input);
      expect(relL2(await plain.read(), await ref.readFloat32('unet.noise_pred'))).toBeGreaterThan(1e-2);
      expect(() => unet.forwardNCHW({ ...input, timestepCond: ehs })).toThrow(ShapeError);
      for (const x of [sample, ehs, te, cond, out, plain]) x.dispose();
      unet.dispose();
    });
  }

  it('timestepCond on a UNet without time_cond_proj_dim is an InvalidArgumentError', async () => {
    const unet = await UNet2DConditionModel.fromPretrained(new FolderSource(join(fixturesDir, 'models/tiny-ssd1b')), { context: ctx, dtype: 'f32' });
    const sample = ctx.empty([1, 4, 8, 8], 'f32');
    const ehs = ctx.empty([1, 77, 40], 'f32');
    const te = ctx.empty([1, 16], 'f32');
    const cond = ctx.empty([1, 32], 'f32');
    expect(() => unet.forwardNCHW({ sample, timestep: 1, encoderHiddenStates: ehs, textEmbeds: te, timeIds: [[64, 64, 0, 0, 64, 64]], timestepCond: cond })).toThrow(InvalidArgumentError);
    for (const x of [sample, ehs, te, cond]) x.dispose();
    unet.dispose();
  });
});
