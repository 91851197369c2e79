/**
 * @ssd/kernels — the WGSL operator set of the SDXL family on @ssd/tensor, one op function per kernel
 * (f32, and f16 storage with f32 accumulation when the device has shader-f16), plus the nn blocks
 * (Linear, Conv2d, GroupNorm, LayerNorm, Attention, FeedForward, ResnetBlock2D, Up/Downsample2D)
 * named as diffusers names them.
 *
 * Ops validate shapes and dtypes, record into the context's encoder and return new tensors; they
 * never submit or read back.
 */
export { linear, matmul, type MatmulOptions, type GemmTile, type GemmVariant } from './matmul.js';
export { conv2d, conv2dWeightFromOIHW, conv2dWeightShape, type Conv2dOptions } from './conv2d.js';
export { conv2dWinograd, conv2dWinogradScratch, type Conv2dWinogradOptions, type WinogradConvShape } from './conv2d-winograd.js';
export { winogradWeightFromOIHW, winogradWeightShape, WINOGRAD, type WinogradTile, type WinogradMatrices } from './winograd-weights.js';
export { chooseConvAlgorithm, convAlgorithmSource, convScratchBytes, convWeightElements, winogradApplies, winogradTileOf, type ConvAlgorithm, type ConvLayer } from './conv2d-algorithm.js';
export { chooseGemmVariant } from './gemm.js';
export { attention, chooseAttentionVariant, type AttentionOperand, type AttentionOptions, type AttentionVariant, type AttentionTile } from './attention.js';
export { softmax } from './softmax.js';
export { groupNorm } from './group-norm.js';
export { layerNorm } from './layer-norm.js';
export { add, mul, silu, gelu, scale, activate, geglu, broadcastShapes } from './elementwise.js';
export { combine, guidance, cast } from './combine.js';
export { relu, affine } from './image.js';
export { upsampleNearest2x, concatChannels, concatBatch, nchwToNhwc, nhwcToNchw } from './layout.js';
export { upsampleNearest } from './resize.js';
export { embedding, gatherRows, timestepEmbedding, timestepEmbeddingValues } from './embedding.js';
export { tokenEmbedding } from './token-embedding.js';
export { argmax, nonFiniteFlag, stdPerSample } from './reduce.js';
export { clamp, thresholdSample, quantileRanks } from './threshold.js';
export { ACTIVATIONS, activationWgsl, activationRef, erf, type Activation } from './shader.js';
export * from './nn/index.js';
