// The nn blocks, named as diffusers/PyTorch name them; each holds its weights (taken from a
// WeightStore by checkpoint key) and calls op functions, never WGSL.
export { Linear } from './linear.js';
export { Conv2d, type Conv2dConfig } from './conv2d.js';
export { GroupNorm, LayerNorm } from './norm.js';
export { Attention, type AttentionConfig } from './attention.js';
export { FeedForward } from './feed-forward.js';
export { ResnetBlock2D, Downsample2D, Upsample2D, type ResnetConfig } from './resnet.js';
export { LoraWeight, type LoraKind, type LoraMode, type LoraPart, type LowRankPair } from './lora-weight.js';
export { collectLoraWeights, namedLoraTargets, type LoraTarget } from './lora-targets.js';
