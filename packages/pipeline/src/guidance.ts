// Classifier-free guidance on the UNet's [uncond, cond] output: ε = ε_u + g·(ε_c − ε_u) in f32, and
// diffusers' rescale_noise_cfg (guidance_rescale φ, "Common Diffusion Noise Schedules and Sample Steps
// are Flawed" §3.4): φ·ε·(std(ε_c)/std(ε)) + (1 − φ)·ε, per sample, std unbiased.
import type { Tensor } from '@ssd/tensor';
import { cast, guidance, mul, stdPerSample } from '@ssd/kernels';
import { gatherBatch } from './batch.js';

/** The guided noise prediction (f32, a new tensor); `eps` is not freed. Rows: b (guided: eps has 2b). */
export async function guidedNoise(eps: Tensor, b: number, guided: boolean, g: number, phi: number): Promise<Tensor> {
  if (!guided) return cast(eps, 'f32');
  const x = guidance(eps, g, { outDtype: 'f32' });
  if (phi <= 0) return x;
  try {
    return await rescaleNoiseCfg(x, eps, b, phi);
  } finally {
    x.dispose();
  }
}

/** rescale_noise_cfg: a new tensor; x and eps are not freed. Reads back 2·b numbers. */
async function rescaleNoiseCfg(x: Tensor, eps: Tensor, b: number, phi: number): Promise<Tensor> {
  const ctx = x.ctx;
  const condRows = gatherBatch([eps], Array.from({ length: b }, (_, k) => ({ from: 0, row: b + k })), 'cond half');
  const cond32 = cast(condRows, 'f32');
  condRows.dispose();
  const stdText = stdPerSample(cond32);
  cond32.dispose();
  const stdCfg = stdPerSample(x);
  const [st, sc] = await Promise.all([stdText.read(), stdCfg.read()]);
  stdText.dispose();
  stdCfg.dispose();
  const factors = Float32Array.from({ length: b }, (_, k) => phi * (st[k] / sc[k]) + (1 - phi));
  const f = ctx.fromData(factors, [b, 1, 1, 1], 'f32', 'rescale');
  try {
    return mul(x, f);
  } finally {
    f.dispose();
  }
}
