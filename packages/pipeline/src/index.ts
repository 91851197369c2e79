/**
 * @ssd/pipeline — StableDiffusionXLPipeline (SSD-1B, Segmind-Vega, SDXL, custom UNets), the six
 * diffusers schedulers, a torch-compatible seeded generator, PNG encoding and the `ssd` CLI.
 *
 * ```ts
 * const pipe = await StableDiffusionXLPipeline.fromPretrained('path/or/url/to/SSD-1B', { dtype: 'f16', variant: 'fp16' });
 * const { images, seed } = await pipe.generate({ prompt: 'a cat', numInferenceSteps: 25, seed: 42 });
 * ```
 */
export { StableDiffusionXLPipeline, type PipelineOptions, type GenerateResult } from './stable-diffusion-xl.js';
export type { GenerateOptions, Img2ImgOptions, StepInfo, RgbaImage } from './options.js';
export type { RunReport, StageReport } from './run.js';
export type { ComponentLoadProgress } from './components.js';
export { encodePng, formatParameters, crc32, type PngImage, type GenerationParameters } from './png.js';
export { decodePng } from './png-decode.js';
export { latentPreview } from './image.js';
export { denormalize, toRgba8 } from '@ssd/vae';
export { GpuLatentOps, randnNHWC, uploadNCHW, downloadNCHW } from './gpu-latent-ops.js';
export { TorchGenerator } from './random/torch-generator.js';
export type { TorchGeneratorOptions, NormalFillPath } from './random/torch-generator.js';
export {
  createScheduler, SCHEDULER_NAMES, SCHEDULER_CLASS_NAMES, SCHEDULER_PRESETS,
  Float32LatentOps, float32Latent, img2imgTimesteps,
  EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DDPMScheduler, DDIMScheduler,
  DPMSolverMultistepScheduler, UniPCMultistepScheduler,
} from './schedulers/index.js';
export type { Scheduler, SchedulerName, StepOptions, LatentOps, Float32Latent, SchedulerConfig, Img2ImgTimesteps } from './schedulers/index.js';
