/**
 * @ssd/vae — the SDXL family's image autoencoders on WebGPU: AutoencoderKL (the SDXL / SSD-1B / Vega
 * VAE, tiled so that 1024² fits a 128 MiB storage binding) and AutoencoderTiny (TAESD / TAESDXL).
 *
 * ```ts
 * const vae = await AutoencoderKL.fromPretrained('path/to/SSD-1B', { context: ctx });   // f32 (force_upcast)
 * const { sample, tiling } = await vae.decode(latents);   // pipeline latents NHWC → image NHWC f32 [-1, 1]
 * const [png] = await imagesToRgba8(sample);               // diffusers' postprocess, RGBA8
 * ```
 *
 * Contracts: decode() divides by scaling_factor itself; encode() returns the unscaled latent
 * distribution and encodeLatents() the pipeline-scaled sample. Non-finite outputs throw
 * NumericalError naming the stage. Tiling: 'auto' | 'always' | 'never'. See README.md.
 */
export { AutoencoderKL } from './autoencoder-kl.js';
export { chooseDtype, type AutoencoderLoadOptions } from './open-autoencoder.js';
export type { AutoencoderKLOutput, DecoderOutput, EncodeLatentsOptions, RunOptions } from './autoencoder-kl.js';
export { AutoencoderTiny, type AutoencoderTinyOutput } from './autoencoder-tiny.js';
export { AutoencoderTinyBlock, DecoderTiny, EncoderTiny } from './vae-tiny.js';
export { loadAutoencoder } from './load.js';
export { DiagonalGaussianDistribution } from './distribution.js';
export { Encoder, Decoder } from './vae.js';
export { UNetMidBlock2D, DownEncoderBlock2D, UpDecoderBlock2D, VaeAttentionBlock, type Probe } from './vae-blocks.js';
export { parseAutoencoderKLConfig, parseAutoencoderTinyConfig } from './config.js';
export type { AutoencoderKLConfig, AutoencoderKLSpec, AutoencoderTinyConfig, AutoencoderTinySpec, LatentScaling } from './config.js';
export type { TilePlan, TilingMode, TilingOptions, HostImage } from './tiling/tiling.js';
export { toVaeLatents, toPipelineLatents, type NoiseGenerator } from './latents.js';
export { denormalize, toRgba8, roundHalfEven, imagesToFloat, imagesToRgba8, type ImageData8, type ImageFloat } from './image.js';
