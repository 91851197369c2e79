/**
 * @ssd/pipeline — StableDiffusionXLPipeline (SSD-1B, Segmind-Vega, SDXL, custom UNets), the six
 * diffusers schedulers, a torch-compatible seeded generator, PNG encoding and the `ssd` CLI.
 *
 * ```ts
 * const pipe = await StableDiffusionXLPipeline.fromPretrained('path/or/url/to/SSD-1B', { dtype: 'f16', variant: 'fp16' });
 * const { images, seed } = await pipe.generate({ prompt: 'a cat', numInferenceSteps: 25, seed: 42 });
 * ```
 */
export { StableDiffusionXLPipeline, type PipelineOptions, type EncodePromptOptions } from './stable-diffusion-xl.js';
export { SdxlComponents, LOW_MEMORY_POOL_BYTES, type ComponentsOptions, type ComponentLoadProgress, type Vae, type TextEncoders } from './components.js';
export type { GenerateOptions, Img2ImgOptions, StepInfo, RgbaImage, InitImage, Seed } from './options.js';
export type { GenerateResult, RunReport, StageReport } from './report.js';
export type { PromptEmbeddings } from './prompt-encoding.js';
export { PipelineLoras, type LoadLoraOptions } from './pipeline-loras.js';
export { encodePng, formatParameters, crc32, type PngImage, type GenerationParameters } from './png.js';
export { decodePng, PNG_MAX_PIXELS, type PngDecodeOptions } from './png-decode.js';
export { latentPreview } from './image.js';
export { TorchGenerator } from './random/torch-generator.js';
export type { TorchGeneratorOptions, NormalFillPath } from './random/torch-generator.js';
export {
  createScheduler, SCHEDULER_NAMES, SCHEDULER_CLASS_NAMES, SCHEDULER_PRESETS,
  Float32LatentOps, float32Latent, img2imgTimesteps,
  EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DDPMScheduler, DDIMScheduler,
  DPMSolverMultistepScheduler, UniPCMultistepScheduler, LCMScheduler,
} from './schedulers/index.js';
export type { Scheduler, SchedulerName, SchedulerOutput, StepOptions, LatentOps, Float32Latent, SchedulerConfig, Img2ImgTimesteps } from './schedulers/index.js';
export * from './lora/index.js';
