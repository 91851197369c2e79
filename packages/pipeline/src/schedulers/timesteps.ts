// Timestep placement for the three timestep_spacing modes of Table 2 in "Common Diffusion Noise Schedules
// and Sample Steps are Flawed" (arXiv 2305.08891), as diffusers v0.26's set_timesteps computes them with
// numpy. Two families: Euler/Euler a/DDPM/DDIM place n steps; DPM-Solver/UniPC place n + 1 and drop the last.
import { npArange, npLinspace, roundHalfEven } from './numpy-compat.js';

export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';
export const TIMESTEP_SPACINGS: readonly TimestepSpacing[] = ['leading', 'trailing', 'linspace'];

/**
 * Euler, Euler ancestral, DDPM and DDIM. Descending; `linspace` keeps fractions only when
 * `fractionalLinspace` (Euler's float32 timesteps), the others round half to even.
 */
export function timestepsN(
  spacing: TimestepSpacing,
  n: number,
  numTrain: number,
  stepsOffset: number,
  fractionalLinspace: boolean,
): number[] {
  if (spacing === 'leading') {
    const ratio = Math.floor(numTrain / n);
    return Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + stepsOffset);
  }
  if (spacing === 'trailing') {
    return Array.from(npArange(numTrain, 0, -(numTrain / n)), (t) => roundHalfEven(t) - 1);
  }
  const lin = Array.from(npLinspace(0, numTrain - 1, n)).reverse();
  return lin.map((t) => (fractionalLinspace ? Math.fround(t) : roundHalfEven(t)));
}

/** DPM-Solver multistep and UniPC: n + 1 points, last dropped; `lastTimestep` is T unless λ is clipped. */
export function timestepsNPlus1(
  spacing: TimestepSpacing,
  n: number,
  numTrain: number,
  lastTimestep: number,
  stepsOffset: number,
): number[] {
  if (spacing === 'leading') {
    const ratio = Math.floor(lastTimestep / (n + 1));
    return Array.from({ length: n }, (_, i) => (n - i) * ratio + stepsOffset);
  }
  if (spacing === 'trailing') {
    return Array.from(npArange(lastTimestep, 0, -(numTrain / n)), (t) => roundHalfEven(t) - 1);
  }
  const lin = Array.from(npLinspace(0, lastTimestep - 1, n + 1), roundHalfEven).reverse();
  return lin.slice(0, n);
}
