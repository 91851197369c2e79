// The schedulers' public face: seven diffusers v0.26 schedulers behind one Scheduler interface, chosen by
// CLI or class name (createScheduler), and the LatentOps algebra they run on (CPU: Float32LatentOps).
export { SCHEDULER_NAMES } from './scheduler.js';
export type { Scheduler, SchedulerName, SchedulerOutput, StepOptions } from './scheduler.js';
export { createScheduler, SCHEDULER_CLASS_NAMES, SCHEDULER_PRESETS } from './create-scheduler.js';
export { Float32LatentOps, float32Latent } from './latent-ops.js';
export type { Float32Latent, LatentOps } from './latent-ops.js';
export type { SchedulerConfig } from './config.js';
export { img2imgTimesteps } from './img2img.js';
export type { Img2ImgTimesteps } from './img2img.js';
export { EulerDiscreteScheduler } from './euler-discrete.js';
export { EulerAncestralDiscreteScheduler } from './euler-ancestral-discrete.js';
export { DDPMScheduler } from './ddpm.js';
export { DDIMScheduler } from './ddim.js';
export { DPMSolverMultistepScheduler } from './dpm-solver-multistep.js';
export { UniPCMultistepScheduler } from './unipc-multistep.js';
export { LCMScheduler } from './lcm.js';
