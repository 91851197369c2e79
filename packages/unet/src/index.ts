/**
 * @ssd/unet — UNet2DConditionModel for the SDXL family, built from a diffusers config.json.
 *
 * ```ts
 * const unet = await UNet2DConditionModel.fromPretrained('path/to/SSD-1B', { context: ctx, dtype: 'f16', variant: 'fp16' });
 * const eps = unet.forward({ sample, timestep, encoderHiddenStates, textEmbeds, timeIds });   // NHWC
 * ```
 */
export { UNet2DConditionModel, type UNetForwardInput, type UNetLoadOptions } from './unet-2d-condition.js';
export { parseUNetConfig } from './config.js';
export type { UNet2DConditionConfig, UNetSpec, DownBlockSpec, UpBlockSpec, MidBlockSpec } from './config.js';
export { Transformer2DModel, BasicTransformerBlock } from './transformer-2d.js';
export {
  DownBlock2D, CrossAttnDownBlock2D, UNetMidBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D, CrossAttnUpBlock2D,
  getDownBlock, getMidBlock, getUpBlock, type DownBlock, type MidBlock, type UpBlock,
} from './unet-2d-blocks.js';
export { TimestepEmbedding, guidanceScaleEmbedding } from './embeddings.js';
export { planUNetMemory, unetConvScratch, type UNetConvScratch, type UNetMemoryPlan, type WholeBinding } from './memory.js';
export { unetLoadedElements } from './weight-bytes.js';
