// Inputs for one UNet evaluation as the pipeline feeds it (batch 2 = classifier-free guidance):
// N(0,1)-like latents (NHWC), prompt embeddings [B, 77, 2048], pooled text embeddings [B, 1280] and
// SDXL add_time_ids for the image size. Values come from a fixed LCG so runs are repeatable.
import type { GpuContext, Tensor } from '@ssd/tensor';
import type { UNet2DConditionModel, UNetForwardInput } from '@ssd/unet';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
}

/** n approximately standard-normal values (Box–Muller on an LCG), times `scale`. */
export function normalArray(n: number, seed: number, scale = 1): Float32Array {
  const u = lcg(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

export interface UNetInputs extends UNetForwardInput {
  dispose(): void;
}

/** Inputs for `unet` at a latent of `latentH`×`latentW`, batch `batch`, in the model's dtype. */
export function unetInputs(ctx: GpuContext, unet: UNet2DConditionModel, batch: number, latentH: number, latentW: number, timestep = 500): UNetInputs {
  const spec = unet.spec;
  const crossDim = spec.down.find((d) => d.type === 'CrossAttnDownBlock2D')?.crossAttentionDim ?? spec.mid?.crossAttentionDim ?? 2048;
  const textDim = spec.addition ? spec.addition.inputDim - 6 * spec.addition.timeEmbedDim : 0;
  const dtype = unet.dtype as 'f16' | 'f32';
  const owned: Tensor[] = [];
  const make = (data: Float32Array, shape: number[], label: string) => {
    const t = ctx.fromData(data, shape, dtype, label);
    owned.push(t);
    return t;
  };
  const sample = make(normalArray(batch * latentH * latentW * spec.inChannels, 1), [batch, latentH, latentW, spec.inChannels], 'sample');
  const encoderHiddenStates = make(normalArray(batch * 77 * crossDim, 2), [batch, 77, crossDim], 'encoder_hidden_states');
  const textEmbeds = textDim > 0 ? make(normalArray(batch * textDim, 3), [batch, textDim], 'text_embeds') : undefined;
  const size = [latentH * 8, latentW * 8];
  const timeIds = Array.from({ length: batch }, () => [...size, 0, 0, ...size]);
  return {
    sample, timestep, encoderHiddenStates, textEmbeds, timeIds: spec.addition ? timeIds : undefined,
    dispose: () => owned.forEach((t) => t.dispose()),
  };
}

/** Finite-value check and simple statistics of a readback. */
export function stats(data: ArrayLike<number>): { finite: boolean; nonFinite: number; mean: number; std: number; maxAbs: number } {
  let n = 0;
  let bad = 0;
  let sum = 0;
  let sq = 0;
  let maxAbs = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isFinite(v)) {
      bad++;
      continue;
    }
    n++;
    sum += v;
    sq += v * v;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const mean = sum / Math.max(n, 1);
  return { finite: bad === 0, nonFinite: bad, mean, std: Math.sqrt(Math.max(sq / Math.max(n, 1) - mean * mean, 0)), maxAbs };
}
