// AutoencoderKL's 3×3 convs on each algorithm (load option convAlgorithm): every decode and encode case
// of the diffusers fixture with every eligible layer forced to Winograd F(2×2) or F(4×4) (f32 ≤ 1e-4,
// f16 ≤ 2e-2, as the direct convs), the memory plan against the measured peak with Winograd's scratch
// (within 10%, as for the direct convs), and exact tiling against the whole decode on Winograd.
import { afterAll, describe, expect, it } from 'vitest';
import type { ConvAlgorithm } from '@ssd/kernels';
import { AutoencoderKL } from '@ssd/vae';
import { estimateKLDecode } from '../src/tiling/memory-plan.js';
import { prng, relL2, testContext } from '../../../testing/index.js';
import { klModelDir, readNhwc, referenceFile, referenceJson } from './fixtures.js';

const ctx = await testContext();
const json = await referenceJson('vae');
const ref = await referenceFile('vae');
const dir = klModelDir(json);

const models = new Map<string, AutoencoderKL>();
async function model(convAlgorithm: ConvAlgorithm, dtype: 'f32' | 'f16' = 'f32'): Promise<AutoencoderKL> {
  const key = `${convAlgorithm} ${dtype}`;
  let m = models.get(key);
  if (!m) models.set(key, (m = await AutoencoderKL.fromPretrained(dir, { context: ctx, dtype, convAlgorithm, onNotice: () => {} })));
  return m;
}
afterAll(() => {
  for (const m of models.values()) m.dispose();
});

function gaussian(n: number, seed: string, std: number): Float32Array {
  const r = prng(seed);
  return Float32Array.from({ length: n }, () => std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
}

const CASES: { algorithm: ConvAlgorithm; dtype: 'f32' | 'f16'; tol: number }[] = [
  { algorithm: 'winograd4', dtype: 'f32', tol: 1e-4 },
  { algorithm: 'winograd2', dtype: 'f32', tol: 1e-4 },
  { algorithm: 'winograd2', dtype: 'f16', tol: 2e-2 },
];

describe('AutoencoderKL on Winograd convs vs diffusers', () => {
  it('the load option reaches every 3×3 stride-1 conv; the downsamplers, 1×1 and attention stay as they are', async () => {
    const m = await model('winograd4');
    const dec = m.decoder!;
    const enc = m.encoder!;
    expect(m.convAlgorithm).toBe('winograd4');
    for (const conv of [dec.conv_in, dec.conv_out, dec.mid_block.resnets[0].conv1, dec.up_blocks[0].resnets[0].conv2, dec.up_blocks[0].upsamplers[0].conv, enc.conv_in, enc.down_blocks[1].resnets[0].conv1]) {
      expect(conv.algorithm).toBe('winograd4');
      expect(conv.weight.shape[0]).toBe(36); // [T, Cout, Cin]
    }
    expect(enc.down_blocks[0].downsamplers[0].conv.algorithm).toBe('direct'); // stride 2
    expect(m.post_quant_conv!.algorithm).toBe('direct'); // 1×1
    expect((await model('direct')).decoder!.up_blocks[0].resnets[0].conv1.algorithm).toBe('direct');
  });

  for (const { algorithm, dtype, tol } of CASES) {
    it.runIf(dtype === 'f32' || ctx.f16)(`${algorithm} ${dtype}: every decode and encode case (rel-L2 ≤ ${tol})`, async () => {
      const m = await model(algorithm, dtype);
      for (const { name } of json.decode_cases ?? []) {
        const z = await readNhwc(ref, `${name}.latents`);
        const latents = ctx.fromData(z.data, z.shape, 'f32', 'latents');
        const { sample } = await m.decode(latents);
        const err = relL2((await sample.read()) as Float32Array, (await readNhwc(ref, `${name}.image`)).data);
        console.log(`decode ${name} ${algorithm} ${dtype}: rel-L2 ${err.toExponential(2)} (tolerance ${tol})`);
        expect(err).toBeLessThanOrEqual(tol);
        sample.dispose();
        latents.dispose();
      }
      for (const { name } of json.encode_cases ?? []) {
        const x = await readNhwc(ref, `${name}.image`);
        const image = ctx.fromData(x.data, x.shape, 'f32', 'image');
        const { latentDist } = await m.encode(image);
        const err = relL2((await latentDist.mean.read()) as Float32Array, (await readNhwc(ref, `${name}.latent_dist.mean`)).data);
        console.log(`encode ${name} ${algorithm} ${dtype}: latent mean rel-L2 ${err.toExponential(2)} (tolerance ${tol})`);
        expect(err).toBeLessThanOrEqual(tol);
        latentDist.dispose();
        image.dispose();
      }
    });
  }
});

describe('the memory plan counts Winograd scratch', () => {
  for (const algorithm of ['direct', 'winograd2', 'winograd4'] as const) {
    it(`${algorithm}: estimate vs measured peak of an untiled decode (within 10%)`, async () => {
      const m = await model(algorithm);
      const [h, w] = [24, 20];
      const latents = ctx.fromData(gaussian(h * w * 4, 'peak', 0.5), [1, h, w, 4], 'f32', 'latents');
      await ctx.sync();
      const live0 = ctx.memory.liveBytes;
      ctx.resetPeak();
      const { sample, tiling } = await m.decode(latents);
      const measured = ctx.memory.peakLiveBytes - live0;
      const withoutScratch = estimateKLDecode(m.spec, 1, h, w, 4).peakBytes;
      console.log(`decode ${h}×${w} ${algorithm}: estimated ${(tiling.estimate.peakBytes / 2 ** 20).toFixed(2)} MiB (${(withoutScratch / 2 ** 20).toFixed(2)} without conv scratch), measured ${(measured / 2 ** 20).toFixed(2)} MiB`);
      expect(measured).toBeLessThanOrEqual(tiling.estimate.peakBytes * 1.1);
      expect(measured).toBeGreaterThanOrEqual(tiling.estimate.peakBytes * 0.7);
      if (algorithm !== 'direct') expect(tiling.estimate.peakBytes).toBeGreaterThan(withoutScratch);
      sample.dispose();
      latents.dispose();
    });
  }

  it('winograd4: exact tiles vs the whole decode (rel-L2 ≤ 1e-4), tiles planned with the scratch', async () => {
    const m = await model('winograd4');
    const latents = ctx.fromData(gaussian(32 * 24 * 4, 'tiles', 0.8), [1, 32, 24, 4], 'f32', 'latents');
    const whole = await m.decode(latents, { tiling: 'never' });
    const a = (await whole.sample.read()) as Float32Array;
    const exact = await m.decode(latents, { tiling: 'always', tileLatentSize: 12 });
    expect(exact.tiling).toMatchObject({ mode: 'exact', tiled: true });
    const err = relL2((await exact.sample.read()) as Float32Array, a);
    console.log(`winograd4 exact tiled (${exact.tiling.tilePasses} tile passes) vs whole: rel-L2 ${err.toExponential(2)}`);
    expect(err).toBeLessThanOrEqual(1e-4);
    const plain = m.planDecode(1, 32, 24, { tileBudgetBytes: 2 << 20 });
    const direct = (await model('direct')).planDecode(1, 32, 24, { tileBudgetBytes: 2 << 20 });
    expect(plain.tilePasses!).toBeGreaterThan(direct.tilePasses!); // the same budget holds smaller tiles with V and Mt
    for (const r of [whole, exact]) r.sample.dispose();
    latents.dispose();
  });
});
