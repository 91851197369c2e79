// The UNet evaluation of one denoising step. Classifier-free guidance batches the unconditional and
// conditional rows ([uncond…, cond…], diffusers' torch.cat([latents] * 2)) into one UNet call; with
// cfgBatch 'split' the two halves run one after the other instead (as stable-diffusion.cpp does), so
// the UNet's activations are those of half the batch — the low-memory mode's default. Each row's
// arithmetic is the same either way, so both give the same noise prediction.
import type { Tensor } from '@ssd/tensor';
import type { UNet2DConditionModel, UNetForwardInput } from '@ssd/unet';
import { gatherBatch } from './batch.js';

export type CfgBatch = 'together' | 'split';

/** noise_pred for the UNet input `input` (all rows), in one call or in two halves. */
export function unetNoisePrediction(unet: UNet2DConditionModel, input: Omit<UNetForwardInput, 'onIntermediate'>, split: boolean): Tensor {
  const n = input.sample.shape[0];
  if (!split || n < 2 || n % 2) return unet.forward(input);
  const half = n / 2;
  const outs: Tensor[] = [];
  try {
    for (const from of [0, half]) {
      const rows = Array.from({ length: half }, (_, i) => ({ from: 0, row: from + i }));
      const pick = (t: Tensor | undefined, what: string) => (t ? gatherBatch([t], rows, `cfg half: ${what}`) : undefined);
      const picked = {
        sample: pick(input.sample, 'sample')!,
        encoderHiddenStates: pick(input.encoderHiddenStates, 'encoder_hidden_states')!,
        textEmbeds: pick(input.textEmbeds, 'text_embeds'),
        timestepCond: pick(input.timestepCond, 'timestep_cond'),
      };
      try {
        const timestep = typeof input.timestep === 'number' ? input.timestep : Array.from(input.timestep).slice(from, from + half);
        outs.push(unet.forward({ ...picked, timestep, timeIds: input.timeIds?.slice(from, from + half) }));
      } finally {
        for (const t of Object.values(picked)) t?.dispose();
      }
    }
    return gatherBatch(outs, Array.from({ length: n }, (_, i) => ({ from: i < half ? 0 : 1, row: i % half })), 'noise_pred');
  } finally {
    for (const t of outs) t.dispose();
  }
}
