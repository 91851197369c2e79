// LCMScheduler vs diffusers v0.26.3 (reference/lcm_scheduler.*): LCMScheduler.from_config(the SDXL
// scheduler config) at 4 and 8 steps — config, alphas_cumprod and timesteps exactly; the noise drawn
// inside step bit for bit from the run's generator (none on the last step); denoised and prev_sample
// on the CPU (Float32LatentOps) and the GPU (GpuLatentOps), chained through our own samples.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, NodeFileSource, SafetensorsFile, type Tensor } from '@ssd/tensor';
import { createScheduler, Float32LatentOps, float32Latent, LCMScheduler, TorchGenerator, type Float32Latent, type LatentOps } from '@ssd/pipeline';
import { GpuLatentOps, downloadNCHW, uploadNCHW } from '../src/gpu-latent-ops.js';
import { fixturesDir, hasFixtures, relL2, testContext } from '../../../testing/index.js';

const REF = `${fixturesDir}/reference/lcm_scheduler`;

interface Run {
  name: string;
  steps: number;
  shape: number[];
  generator_seed: number;
  config: Record<string, unknown>;
  timesteps: number[];
}

describe.skipIf(!hasFixtures('reference/lcm_scheduler.safetensors', 'reference/lcm_scheduler.json'))('LCMScheduler vs diffusers v0.26.3', () => {
  const meta = JSON.parse(readFileSync(`${REF}.json`, 'utf8')) as { base_config: Record<string, unknown>; runs: Run[] };

  for (const run of meta.runs) {
    for (const where of ['cpu', 'gpu'] as const) {
      it(`${run.name} (${where}): timesteps, noise draws, denoised and prev_sample`, async () => {
        const file = await SafetensorsFile.open(new NodeFileSource(`${REF}.safetensors`));
        const get = (k: string) => file.readFloat32(`${run.name}.${k}`);
        const s = createScheduler('lcm', meta.base_config);
        expect(s).toBeInstanceOf(LCMScheduler);
        for (const [k, v] of Object.entries(run.config)) if (k in s.config) expect(s.config[k], k).toEqual(v);
        s.setTimesteps(run.steps);
        expect(Array.from(s.timesteps)).toEqual(run.timesteps);
        expect(Array.from(s.timesteps)).toEqual(Array.from(await file.read(`${run.name}.timesteps`) as BigInt64Array, Number));
        expect(s.alphasCumprod).toEqual(await get('alphas_cumprod'));
        expect(s.initNoiseSigma).toBe(1);
        const ctx = where === 'gpu' ? await testContext() : null;
        const cpu = new Float32LatentOps();
        const gpu = ctx ? new GpuLatentOps(ctx) : null;
        type L = Float32Latent | Tensor;
        const ops = (gpu ?? cpu) as LatentOps<L>;
        let draws = 0;
        const counting: LatentOps<L> = {
          combine: (t) => ops.combine(t),
          clamp: (x, lo, hi) => ops.clamp(x, lo, hi),
          threshold: (x, r, m) => ops.threshold(x, r, m),
          release: (x) => ops.release(x),
          randnLike: (like, gen) => (draws++, ops.randnLike(like, gen)),
        };
        const up = async (data: Float32Array): Promise<L> => (gpu ? uploadNCHW(ctx!, data, run.shape) : cpu.combine([[float32Latent(data, run.shape), 1]]));
        const down = async (x: L): Promise<Float32Array> => (gpu ? downloadNCHW(x as Tensor) : (x as Float32Latent).data);
        const g = new TorchGenerator(run.generator_seed);
        let x: L = await up(await get('step0.sample'));
        for (let i = 0; i < run.steps; i++) {
          const t = s.timesteps[i];
          const sample = await get(`step${i}.sample`);
          expect(relL2(await down(x), sample), `step ${i} sample (ours, chained)`).toBeLessThanOrEqual(1e-5);
          const m = await up(await get(`step${i}.model_output`));
          const before = g.clone();
          const out = s.step(counting, m, t, x, { generator: g, withPredOriginal: true });
          // the noise: one draw on every step but the last, bit for bit what diffusers drew
          if (i < run.steps - 1) expect(before.randn(run.shape)).toEqual(await get(`step${i}.noise0`));
          expect(g.clone().randn([8])).toEqual(before.randn([8])); // g drew exactly what `before` replayed
          expect(relL2(await down(out.denoised!), await get(`step${i}.denoised`)), `step ${i} denoised`).toBeLessThanOrEqual(1e-6);
          expect(relL2(await down(out.prevSample), await get(`step${i}.prev_sample`)), `step ${i} prev_sample`).toBeLessThanOrEqual(1e-6);
          expect(out.predOriginalSample).toBeDefined();
          ops.release(out.denoised!);
          ops.release(out.predOriginalSample!);
          ops.release(m);
          ops.release(x);
          x = out.prevSample;
        }
        ops.release(x);
        expect(draws).toBe(run.steps - 1);
        expect(() => s.step(ops, x, s.timesteps[0], x)).toThrow(InvalidArgumentError); // all steps taken
        if (!gpu) expect(cpu.live).toBe(0);
        await file.source.close();
      });
    }
  }

  it('timesteps for other step counts and configs, and the limits', () => {
    const s = createScheduler('lcm', meta.base_config);
    s.setTimesteps(1);
    expect(Array.from(s.timesteps)).toEqual([999]);
    s.setTimesteps(2);
    expect(Array.from(s.timesteps)).toEqual([999, 499]);
    s.setTimesteps(50);
    expect(s.timesteps[49]).toBe(19);
    expect(() => s.setTimesteps(51)).toThrow(/cannot be more than original_inference_steps \(50\)/);
    const t = createScheduler('LCMScheduler', { ...meta.base_config, original_inference_steps: 100 });
    t.setTimesteps(4);
    expect(Array.from(t.timesteps)).toEqual([999, 749, 499, 249]); // k = 10: origin 9 … 999
    // the class's own defaults (diffusers LCMScheduler()): scaled_linear 0.00085 → 0.012, no clipping
    const d = createScheduler('lcm', {});
    expect(d.config).toMatchObject({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, clip_sample: false, set_alpha_to_one: true, timestep_scaling: 10, original_inference_steps: 50 });
    expect(d.alphasCumprod).toEqual(s.alphasCumprod);
    expect(() => createScheduler('lcm', { original_inference_steps: 2000 })).toThrow(/original_inference_steps/);
    // every step but the last needs the generator
    const ops = new Float32LatentOps();
    s.setTimesteps(2);
    const x = float32Latent(new Float32Array(4).fill(0.5), [1, 1, 2, 2]);
    expect(() => s.step(ops, x, 999, x)).toThrow(/needs opts.generator/);
  });
});
