// TimestepEmbedding (linear_1 → SiLU → linear_2, with the optional cond_proj of LCM-distilled UNets),
// as diffusers models/embeddings.py; the sinusoidal projections (Timesteps) are computed on the host
// by @ssd/kernels' timestepEmbedding, the guidance-scale embedding by guidanceScaleEmbedding here.
import { withScopeSync, type Tensor, type WeightStore } from '@ssd/tensor';
import { Linear } from '@ssd/kernels';

export class TimestepEmbedding {
  readonly linear_1: Linear;
  readonly linear_2: Linear;
  /** cond_proj (no bias): the condition (LCM's guidance embedding) is added to the input; null without time_cond_proj_dim. */
  readonly cond_proj: Linear | null;
  constructor(store: WeightStore, prefix: string, inChannels: number, timeEmbedDim: number, condProjDim: number | null = null) {
    this.linear_1 = new Linear(store, `${prefix}.linear_1`, inChannels, timeEmbedDim);
    this.linear_2 = new Linear(store, `${prefix}.linear_2`, timeEmbedDim, timeEmbedDim);
    this.cond_proj = condProjDim === null ? null : new Linear(store, `${prefix}.cond_proj`, condProjDim, inChannels, { bias: false });
  }

  /** linear_2(SiLU(linear_1(x + cond_proj(condition)))) (+ residual, folded into linear_2's epilogue). */
  forward(x: Tensor, residual?: Tensor, condition?: Tensor): Tensor {
    return withScopeSync((s) => {
      const input = condition && this.cond_proj ? s.track(this.cond_proj.forward(condition, { residual: x })) : x;
      return this.linear_2.forward(s.track(this.linear_1.forward(input, { activation: 'silu' })), { residual }); // input (if ours) and h are freed once it is recorded
    });
  }
}

/**
 * diffusers' get_guidance_scale_embedding(w, embedding_dim) (pipeline_stable_diffusion_xl.py v0.26.3,
 * after VDM): per value, w·1000 times exp(−ln(10000)·i/(half − 1)) for i < half = ⌊dim/2⌋, then
 * [sin …, cos …] (sin first), zero-padded to an odd dim — every step rounded to float32 as torch does.
 * The pipeline passes w = guidance_scale − 1. Returns [w.length, dim] row-major.
 */
export function guidanceScaleEmbedding(w: ArrayLike<number>, dim: number): Float32Array {
  const f = Math.fround;
  const half = Math.floor(dim / 2);
  const step = f(f(Math.log(f(10000))) / (half - 1));
  const freqs = Array.from({ length: half }, (_, i) => f(Math.exp(f(i * -step))));
  const out = new Float32Array(w.length * dim);
  for (let b = 0; b < w.length; b++) {
    const scaled = f(f(w[b]) * 1000);
    for (let i = 0; i < half; i++) {
      const arg = f(scaled * freqs[i]);
      out[b * dim + i] = Math.sin(arg);
      out[b * dim + half + i] = Math.cos(arg);
    }
  }
  return out;
}
