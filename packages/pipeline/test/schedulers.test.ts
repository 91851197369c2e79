// The six schedulers against diffusers v0.26.3 (../shared/fixtures/reference/schedulers.*): every run in
// the JSON, timesteps exact, sigmas and ᾱ ≤ 1e-6 relative, each step's prev_sample ≤ 1e-5 rel-L2 in f32 with
// our own samples chained step to step; img2img's start; and the contract at 1–50 steps and on bad input.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, InvalidArgumentError, NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { fixturesDir, relL2 } from '../../../testing/index.js';
import { TorchGenerator } from '../src/random/torch-generator.js';
import {
  createScheduler,
  Float32LatentOps,
  float32Latent,
  img2imgTimesteps,
  SCHEDULER_CLASS_NAMES,
  SCHEDULER_NAMES,
  type Float32Latent,
  type LatentOps,
  type Scheduler,
} from '../src/schedulers/index.js';

const ref = `${fixturesDir}/reference`;
/** Python's json.dumps writes ±Infinity and NaN bare; JSON.parse needs them quoted. */
function readJson(path: string): any {
  return JSON.parse(readFileSync(path, 'utf8').replace(/-?Infinity|NaN/g, (m) => `"${m}"`));
}
const meta = readJson(`${ref}/schedulers.json`);
const file = await SafetensorsFile.open(new NodeFileSource(`${ref}/schedulers.safetensors`));
const names = new Set<string>(meta.tensors.map((t: { name: string }) => t.name));
const sdxlConfig: Record<string, unknown> = meta.base_config;

async function numbers(name: string): Promise<number[]> {
  return Array.from(await file.read(name) as ArrayLike<number | bigint>, Number);
}
async function latent(name: string): Promise<Float32Latent> {
  const info = meta.tensors.find((t: { name: string }) => t.name === name);
  return float32Latent(await file.readFloat32(name), info.shape);
}
function maxRel(out: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(out[i] - want[i]) / Math.max(Math.abs(want[i]), 1e-30);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return out.length === want.length ? m : Infinity;
}

/** Float32LatentOps that also records every noise array it draws. */
class RecordingOps extends Float32LatentOps {
  draws: Float32Array[] = [];
  override randnLike(like: Float32Latent, g: TorchGenerator): Float32Latent {
    const x = super.randnLike(like, g);
    this.draws.push(x.data.slice());
    return x;
  }
}

const worst: Record<string, { sigma: number; relL2: number }> = {};

describe('schedulers vs diffusers v0.26.3 fixtures', () => {
  for (const run of meta.runs) {
    it(`${run.name}: ${run.kind} ${JSON.stringify(run.overrides)} × ${run.steps} steps`, async () => {
      const s = createScheduler(run.kind, { ...sdxlConfig, ...run.overrides });
      expect(s.className).toBe(run.kind);
      expect(s.order).toBe(run.order);
      s.setTimesteps(run.steps);
      // timesteps: exact, both from the JSON and the stored tensor
      expect(Array.from(s.timesteps)).toEqual(run.timesteps);
      expect(Array.from(s.timesteps)).toEqual(await numbers(`${run.name}.timesteps`));
      expect(s.timestepDtype).toBe(run.timesteps_dtype);
      const w = (worst[run.kind + (run.overrides.use_karras_sigmas ? ' karras' : '')] = { sigma: NaN, relL2: 0 });
      if (names.has(`${run.name}.sigmas`)) {
        w.sigma = maxRel(s.sigmas!, await numbers(`${run.name}.sigmas`));
        expect(w.sigma).toBeLessThanOrEqual(1e-6);
      }
      if (names.has(`${run.name}.alphas_cumprod`)) {
        expect(maxRel(s.alphasCumprod, await numbers(`${run.name}.alphas_cumprod`))).toBeLessThanOrEqual(1e-6);
      }
      expect(Math.abs(s.initNoiseSigma - run.init_noise_sigma) / run.init_noise_sigma).toBeLessThanOrEqual(1e-6);

      const ops = new RecordingOps();
      const generator = run.generator_seed === null ? undefined : new TorchGenerator(run.generator_seed);
      let sample = await latent(`${run.name}.step0.sample`);
      let owned = false; // step 0's sample is the fixture's; later ones are ours
      for (const [i, entry] of run.step_log.entries()) {
        const t = entry.t;
        const scaled = s.scaleModelInput(ops, sample, t);
        expect(relL2(scaled.data, await file.readFloat32(`${run.name}.step${i}.scaled_model_input`))).toBeLessThanOrEqual(1e-6);
        ops.release(scaled);
        const drawsBefore = ops.draws.length;
        const model = await latent(`${run.name}.step${i}.model_output`);
        const out = s.step(ops, model, t, sample, { generator, withPredOriginal: true });
        const prev = out.prevSample;
        expect(ops.draws.length - drawsBefore).toBe(entry.noise_draws);
        // x̂₀ exactly where diffusers' SchedulerOutput has it (Euler, Euler a, DDPM, DDIM)
        const x0Name = `${run.name}.step${i}.pred_original_sample`;
        expect(out.predOriginalSample === undefined, x0Name).toBe(!names.has(x0Name));
        if (out.predOriginalSample) {
          expect(relL2(out.predOriginalSample.data, await file.readFloat32(x0Name)), x0Name).toBeLessThanOrEqual(1e-5);
          ops.release(out.predOriginalSample);
        }
        for (let k = 0; k < entry.noise_draws; k++) {
          // the generator stays in step with diffusers': its draws are the fixture's, bit for bit
          expect(ops.draws[drawsBefore + k]).toEqual(await file.readFloat32(`${run.name}.step${i}.noise${k}`));
        }
        const e = relL2(prev.data, await file.readFloat32(`${run.name}.step${i}.prev_sample`));
        w.relL2 = Math.max(w.relL2, e);
        expect(e, `step ${i}`).toBeLessThanOrEqual(1e-5);
        if (owned) ops.release(sample);
        sample = prev;
        owned = true;
      }
      ops.release(sample);
      s.dispose(ops);
      expect(ops.live).toBe(0); // the scheduler released all it created, and nothing of ours
    });
  }

  it('reports the worst errors per scheduler', () => {
    console.log('scheduler fixture errors (max sigma rel. error, max prev_sample rel-L2):');
    for (const [k, v] of Object.entries(worst)) {
      const sigma = Number.isNaN(v.sigma) ? 'n/a (ᾱ checked)' : v.sigma.toExponential(2);
      console.log(`  ${k.padEnd(40)} sigma ${sigma}  relL2 ${v.relL2.toExponential(2)}`);
    }
  });
});

describe('img2img start (reference/img2img.json)', () => {
  it('skips the first (1 − strength) of the schedule and noises to its sigma', async () => {
    const img = readJson(`${ref}/img2img.json`);
    const s = createScheduler(img.scheduler.class, { ...sdxlConfig, ...img.scheduler.overrides });
    const n = img.args.num_inference_steps;
    s.setTimesteps(n);
    expect(Array.from(s.timesteps)).toEqual(img.all_timesteps);
    const start = img2imgTimesteps(s, n, img.args.strength);
    expect(start.timesteps).toEqual(img.timesteps_run);
    expect(start.beginIndex).toBe(n - img.init_timestep);
    expect(s.sigmas![start.beginIndex]).toBe(img.start_sigma);
    const ops = new Float32LatentOps();
    const x0 = float32Latent(new Float32Array([1, -2, 0.5, 4]), [1, 4, 1, 1]);
    const eps = float32Latent(new Float32Array([0.25, 1, -1, 0]), [1, 4, 1, 1]);
    const noisy = s.addNoise(ops, x0, eps, start.latentTimestep);
    expect(Array.from(noisy.data)).toEqual(Array.from(x0.data, (v, i) => Math.fround(v + eps.data[i] * img.start_sigma)));
  });
});

/** A stand-in UNet: a fixed mix of the sample and noise, so every step has a well-scaled input. */
function fakeModel(ops: LatentOps<Float32Latent>, x: Float32Latent, g: TorchGenerator): Float32Latent {
  const noise = ops.randnLike(x, g);
  const out = ops.combine([[x, 0.05], [noise, 0.9]]);
  ops.release(noise);
  return out;
}

const VARIANTS: Array<[string, Record<string, unknown>]> = [
  ['sdxl', {}],
  ['trailing', { timestep_spacing: 'trailing' }],
  ['linspace', { timestep_spacing: 'linspace' }],
  ['v_prediction', { prediction_type: 'v_prediction' }],
  ['karras', { use_karras_sigmas: true }],
];

describe('every scheduler at 1, 2, 3, 25 and 50 steps', () => {
  for (const name of SCHEDULER_NAMES) {
    for (const [variant, overrides] of VARIANTS) {
      it(`${name} (${variant})`, () => {
        const s = createScheduler(name, { ...sdxlConfig, ...overrides });
        const ops = new Float32LatentOps();
        for (const n of [1, 2, 3, 25, 50]) {
          s.setTimesteps(n);
          const ts = Array.from(s.timesteps);
          expect(ts.length, `${n} steps`).toBe(n);
          // Karras sigmas rounded to integer timesteps repeat one near t = 0 at 50 steps (…, 2, 1, 1, 0): that is
          // diffusers v0.26's own schedule (it steps by index, not by timestep), so only there equal neighbours pass.
          const rounded = s.config.use_karras_sigmas === true && s.timestepDtype === 'int64';
          for (let i = 1; i < ts.length; i++) {
            if (rounded) expect(ts[i], `timesteps at ${n} steps: ${ts}`).toBeLessThanOrEqual(ts[i - 1]);
            else expect(ts[i], `timesteps at ${n} steps: ${ts}`).toBeLessThan(ts[i - 1]);
          }
          expect(ts.every((t) => t >= 0 && t < 1000)).toBe(true);
          if (s.sigmas) expect(s.sigmas.length).toBe(n + 1);
          const g = new TorchGenerator(1000 + n);
          let x = ops.combine([[float32Latent(g.randn([1, 4, 4, 4]), [1, 4, 4, 4]), s.initNoiseSigma]]);
          for (const t of ts) {
            const scaled = s.scaleModelInput(ops, x, t);
            const model = fakeModel(ops, scaled, g);
            const next = s.step(ops, model, t, x, { generator: g }).prevSample;
            ops.release(scaled);
            ops.release(model);
            ops.release(x);
            x = next;
            expect(x.data.every(Number.isFinite), `${name} ${variant} ${n} steps at t=${t}`).toBe(true);
          }
          ops.release(x);
        }
        s.reset();
        expect(ops.live).toBe(0);
      });
    }
  }
});

const EXTRA: Array<[string, Record<string, unknown>]> = [
  ['DPMSolverMultistepScheduler', { solver_order: 3 }],
  ['DPMSolverMultistepScheduler', { algorithm_type: 'sde-dpmsolver++' }],
  ['DPMSolverMultistepScheduler', { solver_type: 'heun', final_sigmas_type: 'sigma_min', lower_order_final: false }],
  ['DPMSolverMultistepScheduler', { algorithm_type: 'dpmsolver', final_sigmas_type: 'sigma_min', solver_order: 3 }],
  ['DPMSolverMultistepScheduler', { algorithm_type: 'sde-dpmsolver', final_sigmas_type: 'sigma_min' }],
  ['DPMSolverMultistepScheduler', { use_lu_lambdas: true, euler_at_final: true }],
  ['DPMSolverMultistepScheduler', { lambda_min_clipped: -5.1, prediction_type: 'sample' }],
  ['UniPCMultistepScheduler', { solver_order: 3, solver_type: 'bh1' }],
  ['UniPCMultistepScheduler', { predict_x0: false, disable_corrector: [0, 2] }],
  ['DDIMScheduler', { set_alpha_to_one: true, prediction_type: 'sample', rescale_betas_zero_snr: true }],
  ['DDPMScheduler', { variance_type: 'fixed_small_log' }],
  ['DDPMScheduler', { variance_type: 'fixed_large', beta_schedule: 'squaredcos_cap_v2' }],
  ['EulerDiscreteScheduler', { timestep_type: 'continuous', prediction_type: 'v_prediction', rescale_betas_zero_snr: true }],
  ['EulerAncestralDiscreteScheduler', { beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02 }],
];

describe('other diffusers configurations run finite', () => {
  for (const [cls, overrides] of EXTRA) {
    it(`${cls} ${JSON.stringify(overrides)}`, () => {
      const s = createScheduler(cls, { ...sdxlConfig, ...overrides });
      const ops = new Float32LatentOps();
      for (const n of [1, 4, 20]) {
        s.setTimesteps(n);
        const g = new TorchGenerator(n);
        let x = ops.combine([[float32Latent(g.randn([1, 4, 2, 2]), [1, 4, 2, 2]), s.initNoiseSigma]]);
        for (const t of s.timesteps) {
          const model = fakeModel(ops, x, g);
          const next = s.step(ops, model, t, x, { generator: g, eta: 0.5 }).prevSample;
          ops.release(model);
          ops.release(x);
          x = next;
          expect(x.data.every(Number.isFinite), `${n} steps at t=${t}`).toBe(true);
        }
        ops.release(x);
      }
      s.dispose(ops);
      expect(ops.live).toBe(0);
    });
  }
});

describe('errors', () => {
  it('rejects invalid step counts', () => {
    for (const name of SCHEDULER_NAMES) {
      const s = createScheduler(name, sdxlConfig);
      for (const bad of [0, -1, 2.5, NaN, Infinity, 1001]) expect(() => s.setTimesteps(bad), `${name} ${bad}`).toThrow(InvalidArgumentError);
    }
  });

  it('rejects an unknown scheduler name, listing the valid ones', () => {
    expect(() => createScheduler('heun', sdxlConfig)).toThrow(ConfigError);
    expect(() => createScheduler('heun', sdxlConfig)).toThrow(/euler, euler-a, ddpm, ddim, dpm\+\+2m, dpm\+\+2m-karras, unipc/);
  });

  it('rejects values a scheduler uses but we do not support, naming the key', () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['dpm++2m', { thresholding: true }, 'thresholding'],
      ['ddim', { clip_sample_range: 0 }, 'clip_sample_range'],
      ['euler', { interpolation_type: 'log_linear' }, 'interpolation_type'],
      ['euler', { beta_schedule: 'cosine' }, 'beta_schedule'],
      ['euler-a', { prediction_type: 'sample' }, 'prediction_type'],
      ['dpm++2m', { final_sigmas_type: 'last' }, 'final_sigmas_type'],
      ['unipc', { solver_type: 'bh3' }, 'solver_type'],
      ['euler', { timestep_spacing: 'uniform' }, 'timestep_spacing'],
    ];
    for (const [name, cfg, key] of cases) {
      let err: unknown;
      try {
        createScheduler(name, { ...sdxlConfig, ...cfg });
      } catch (e) {
        err = e;
      }
      expect(err, `${name} ${JSON.stringify(cfg)}`).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).key).toBe(key);
    }
  });

  it('ignores keys the scheduler does not use, as from_config does', () => {
    const s = createScheduler('euler', { ...sdxlConfig, clip_sample: true, solver_order: 7, _class_name: 'X' });
    expect(s.config.clip_sample).toBeUndefined();
    expect(createScheduler('ddim', { ...sdxlConfig, use_karras_sigmas: true }).config.use_karras_sigmas).toBeUndefined();
  });

  it('applies the CLI presets and accepts diffusers class names', () => {
    expect(createScheduler('dpm++2m-karras', sdxlConfig).config).toMatchObject({ use_karras_sigmas: true, algorithm_type: 'dpmsolver++' });
    expect(createScheduler('dpm++2m', { ...sdxlConfig, use_karras_sigmas: true }).name).toBe('dpm++2m');
    for (const cls of SCHEDULER_CLASS_NAMES) expect(createScheduler(cls, sdxlConfig).className).toBe(cls);
  });

  it('needs a generator where diffusers would draw noise, and never releases caller arrays', () => {
    const s: Scheduler = createScheduler('euler-a', sdxlConfig);
    s.setTimesteps(2);
    const ops = new Float32LatentOps();
    const x = float32Latent(new Float32Array(4), [1, 4, 1, 1]);
    expect(() => s.step(ops, x, s.timesteps[0], x)).toThrow(InvalidArgumentError);
    expect(ops.live).toBe(0);
  });
});
