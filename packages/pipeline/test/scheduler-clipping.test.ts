// DDPM and DDIM with clip_sample (also DDIM's default when the config lacks the key) and dynamic
// thresholding, against a float64 transcription of diffusers v0.26's step (scheduling_ddim.py /
// scheduling_ddpm.py: pred_original_sample, its clamp or _threshold_sample, then prev_sample), on CPU
// arrays and on the GPU (GpuLatentOps: the clamp and quantile kernels).
import { describe, expect, it } from 'vitest';
import { relL2, testContext } from '../../../testing/index.js';
import { TorchGenerator } from '../src/random/torch-generator.js';
import { GpuLatentOps, downloadNCHW, uploadNCHW } from '../src/gpu-latent-ops.js';
import { createScheduler, Float32LatentOps, float32Latent, type Float32Latent, type Scheduler } from '../src/schedulers/index.js';

const base = {
  num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear',
  steps_offset: 1, timestep_spacing: 'leading', set_alpha_to_one: false,
};
const SHAPE = [2, 4, 5, 3];

/** diffusers' x̂₀ clipping in float64. */
function clipRef(x0: Float64Array, cfg: Record<string, unknown>): Float64Array {
  if (cfg.thresholding === true) {
    const b = SHAPE[0];
    const p = x0.length / b;
    const ratio = cfg.dynamic_thresholding_ratio as number;
    const r = Math.fround(Math.fround(ratio) * (p - 1));
    const [lo, hi, w] = [Math.floor(r), Math.ceil(r), Math.fround(r - Math.floor(r))];
    const out = new Float64Array(x0.length);
    for (let k = 0; k < b; k++) {
      const sorted = Array.from(x0.subarray(k * p, (k + 1) * p), Math.abs).sort((u, v) => u - v);
      const s = Math.min(Math.max(sorted[lo] + w * (sorted[hi] - sorted[lo]), 1), cfg.sample_max_value as number);
      for (let i = k * p; i < (k + 1) * p; i++) out[i] = Math.min(Math.max(x0[i], -s), s) / s;
    }
    return out;
  }
  if (cfg.clip_sample === false) return x0;
  const range = (cfg.clip_sample_range as number | undefined) ?? 1;
  return x0.map((v) => Math.min(Math.max(v, -range), range));
}

/** One diffusers step (epsilon prediction) in float64: [prev_sample, pred_original_sample]. */
function stepRef(kind: 'ddim' | 'ddpm', s: Scheduler, cfg: Record<string, unknown>, n: number, t: number, x: Float32Array, m: Float32Array, noise: Float32Array | null): [Float64Array, Float64Array] {
  const ac = s.alphasCumprod;
  const prevT = t - Math.floor(1000 / n);
  const a = ac[t];
  const aPrev = prevT >= 0 ? ac[prevT] : kind === 'ddim' ? ac[0] : 1;
  const x0 = clipRef(Float64Array.from(x, (v, i) => (v - Math.sqrt(1 - a) * m[i]) / Math.sqrt(a)), cfg);
  if (kind === 'ddim') return [x0.map((v, i) => Math.sqrt(aPrev) * v + Math.sqrt(1 - aPrev) * m[i]), x0];
  const alphaT = a / aPrev;
  const betaT = 1 - alphaT;
  const c0 = (Math.sqrt(aPrev) * betaT) / (1 - a);
  const c1 = (Math.sqrt(alphaT) * (1 - aPrev)) / (1 - a);
  const std = Math.sqrt(Math.max(((1 - aPrev) / (1 - a)) * betaT, 1e-20));
  return [x0.map((v, i) => c0 * v + c1 * x[i] + (noise ? std * noise[i] : 0)), x0];
}

class DrawingOps extends Float32LatentOps {
  last: Float32Array | null = null;
  override randnLike(like: Float32Latent, g: TorchGenerator): Float32Latent {
    const r = super.randnLike(like, g);
    this.last = r.data.slice();
    return r;
  }
}

const CASES: Array<[string, Record<string, unknown>]> = [
  ['clip_sample absent (diffusers default: true, range 1)', {}],
  ['clip_sample true, clip_sample_range 0.5', { clip_sample: true, clip_sample_range: 0.5 }],
  ['thresholding, ratio 0.9, sample_max_value 1.5', { clip_sample: false, thresholding: true, dynamic_thresholding_ratio: 0.9, sample_max_value: 1.5 }],
];

describe('DDPM / DDIM x̂₀ clipping vs diffusers (float64)', () => {
  for (const kind of ['ddim', 'ddpm'] as const) {
    for (const [label, over] of CASES) {
      it(`${kind}: ${label}`, () => {
        const cfg = { ...base, ...over };
        const s = createScheduler(kind, cfg);
        const n = 4;
        s.setTimesteps(n);
        const ops = new DrawingOps();
        const g = new TorchGenerator(7);
        const size = SHAPE.reduce((p, q) => p * q, 1);
        let x = float32Latent(g.randn(SHAPE), SHAPE);
        let owned = false;
        let unclippedDiff = 0;
        for (const t of s.timesteps) {
          // model outputs large enough that x̂₀ leaves [-1, 1]
          const m = float32Latent(g.randn(SHAPE).map((v) => 0.6 * v), SHAPE);
          ops.last = null;
          const out = s.step(ops, m, t, x, { generator: g, withPredOriginal: true });
          const [wantPrev, wantX0] = stepRef(kind, s, { clip_sample: true, ...cfg }, n, t, x.data, m.data, ops.last);
          const [noClip] = stepRef(kind, s, { ...cfg, clip_sample: false, thresholding: false }, n, t, x.data, m.data, ops.last);
          expect(relL2(out.prevSample.data, wantPrev), `prev at t=${t}`).toBeLessThanOrEqual(1e-6);
          expect(relL2(out.predOriginalSample!.data, wantX0), `x0 at t=${t}`).toBeLessThanOrEqual(1e-6);
          unclippedDiff = Math.max(unclippedDiff, relL2(noClip, wantPrev));
          ops.release(out.predOriginalSample!);
          if (owned) ops.release(x);
          x = out.prevSample;
          owned = true;
          expect(x.data.length).toBe(size);
        }
        expect(unclippedDiff, 'the clipping changed the result (the test can fail)').toBeGreaterThan(1e-3);
        ops.release(x);
        s.dispose(ops);
        expect(ops.live).toBe(0);
      });
    }
  }

  it('GPU ops (clamp / quantile kernels) match the CPU ops for DDIM thresholding and DDPM clipping', async () => {
    const ctx = await testContext();
    const gpu = new GpuLatentOps(ctx);
    for (const [kind, cfg] of [['ddim', CASES[2][1]], ['ddpm', CASES[1][1]]] as const) {
      const run = async (useGpu: boolean): Promise<Float32Array> => {
        const s = createScheduler(kind, { ...base, ...cfg });
        s.setTimesteps(3);
        const g = new TorchGenerator(11);
        const cpu = new Float32LatentOps();
        let xc = float32Latent(g.randn(SHAPE), SHAPE);
        let xg = uploadNCHW(ctx, xc.data, SHAPE);
        for (const t of s.timesteps) {
          const m = g.randn(SHAPE).map((v) => 0.6 * v);
          if (useGpu) {
            const mt = uploadNCHW(ctx, m, SHAPE);
            const next = s.step(gpu, mt, t, xg, { generator: g }).prevSample;
            mt.dispose();
            xg.dispose();
            xg = next;
          } else {
            xc = s.step(cpu, float32Latent(m, SHAPE), t, xc, { generator: g }).prevSample;
          }
        }
        if (!useGpu) return xc.data;
        const out = await downloadNCHW(xg);
        xg.dispose();
        return out;
      };
      const want = await run(false);
      expect(relL2(await run(true), want), kind).toBeLessThanOrEqual(1e-6);
    }
  });
});
