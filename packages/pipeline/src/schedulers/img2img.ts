// Where an image-to-image run starts in the schedule (diffusers v0.26 StableDiffusionXLImg2ImgPipeline
// .get_timesteps): the first (1 − strength) of the steps are skipped and noise is added at the first kept one.
import { InvalidArgumentError } from '@ssd/tensor';
import type { Scheduler } from './scheduler.js';

export interface Img2ImgTimesteps {
  /** Index of the first step run (diffusers t_start · order); also passed to setBeginIndex. */
  readonly beginIndex: number;
  /** The timesteps actually run. */
  readonly timesteps: number[];
  /** The timestep the initial latents are noised to (addNoise's t): timesteps[0]. */
  readonly latentTimestep: number;
}

/**
 * After `scheduler.setTimesteps(numInferenceSteps)`: init_timestep = min(⌊n·strength⌋, n),
 * t_start = n − init_timestep, run timesteps[t_start·order:]. Calls scheduler.setBeginIndex so the
 * step counter and addNoise use that position.
 */
export function img2imgTimesteps(scheduler: Scheduler, numInferenceSteps: number, strength: number): Img2ImgTimesteps {
  if (!(strength >= 0 && strength <= 1)) {
    throw new InvalidArgumentError(`img2img: strength must be in [0, 1], got ${strength}`);
  }
  const initTimestep = Math.min(Math.floor(numInferenceSteps * strength), numInferenceSteps);
  const tStart = Math.max(numInferenceSteps - initTimestep, 0);
  const beginIndex = tStart * scheduler.order;
  const timesteps = Array.from(scheduler.timesteps).slice(beginIndex);
  if (timesteps.length === 0) {
    throw new InvalidArgumentError(
      `img2img: strength ${strength} with ${numInferenceSteps} steps leaves no step to run; raise strength or the step count`,
    );
  }
  scheduler.setBeginIndex(beginIndex);
  return { beginIndex, timesteps, latentTimestep: timesteps[0] };
}
