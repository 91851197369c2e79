// Non-finite outputs become a NumericalError that names the stage, never a NaN or black image. The
// output is checked once, cheaply (one GPU flag, or the host copy a tiled run reads anyway); only when
// that check fails is the pass run again with a flag after every stage to find where it started.
import { NumericalError, type DType, type Tensor } from '@ssd/tensor';
import { nonFiniteFlag } from '@ssd/kernels';
import type { Probe } from './vae-blocks.js';

/** Index of the first NaN/±inf in `data`, or −1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
  return -1;
}

/** Largest |value| (for the f16 range check of inputs). */
export function maxAbs(data: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const a = Math.abs(data[i]);
    if (a > m) m = a;
  }
  return m;
}

/** Whether `t` holds a NaN or ±inf: one GPU reduction and a 4-byte readback. */
export async function hasNonFinite(t: Tensor): Promise<boolean> {
  const flag = nonFiniteFlag(t);
  try {
    return (await flag.read())[0] !== 0;
  } finally {
    flag.dispose();
  }
}

/**
 * Runs `pass` again with a non-finite flag recorded after every stage and returns the first stage
 * whose output is non-finite (null if none is: the failure did not reproduce).
 */
export async function locateNonFinite(pass: (probe: Probe) => Tensor): Promise<string | null> {
  const flags: [string, Tensor][] = [];
  const out = pass((stage, t) => flags.push([stage, nonFiniteFlag(t)]));
  flags.push(['output', nonFiniteFlag(out)]);
  out.dispose();
  let found: string | null = null;
  for (const [stage, f] of flags) {
    if (found === null && (await f.read())[0] !== 0) found = stage;
    f.dispose();
  }
  return found;
}

/** What to tell the user: f16 overflow is the usual cause (the SDXL VAE's activations exceed 65504). */
export function precisionHint(dtype: DType, what: string): string {
  if (dtype === 'f16') {
    return `The ${what} ran in f16 and its activations overflowed (f16 ends at 65504; the SDXL VAE is known to do this). ` +
      `Load it with dtype 'f32' (the default when its config sets force_upcast), or use an fp16-fixed VAE such as madebyollin/sdxl-vae-fp16-fix.`;
  }
  return `The ${what} ran in f32, so this is not f16 overflow: check the input for NaN/inf or extreme values and the weights for corruption.`;
}

export function numericalError(stage: string, dtype: DType, what: string): NumericalError {
  return new NumericalError(stage, precisionHint(dtype, what));
}
