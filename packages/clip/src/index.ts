/**
 * @ssd/clip — the exact CLIP BPE tokenizer (transformers' CLIPTokenizer) and the two SDXL text
 * encoders: CLIPTextModel (CLIP-L) and CLIPTextModelWithProjection (OpenCLIP bigG). SDXL's two
 * tokenizers ship with the package (`loadSdxlTokenizer`, `sdxlTokenizerSource`) for checkpoints
 * that carry none (single files).
 */
export { CLIPTokenizer } from './tokenizer.js';
export type { EncodeOptions, TokenizerEncoding, TokenizerLoadOptions, DecodeOptions, TokenizerFileTexts } from './tokenizer.js';
export { CLIPTextModel, CLIPTextModelWithProjection } from './clip-text-model.js';
export type { CLIPTextConfig, CLIPLoadOptions, CLIPEncodeOptions, CLIPTextOutput } from './clip-text-model.js';
export { loadSdxlTokenizer, sdxlTokenizerSource, withSdxlTokenizers, readBundledTokenizerFile, SDXL_TOKENIZER_CONFIGS } from './sdxl-tokenizers.js';
export type { SdxlTokenizerName } from './sdxl-tokenizers.js';
export { parseCLIPTextConfig, checkTokenizerFitsEncoder, checkPromptLengthsMatch, CLIP_ACTIVATIONS } from './config.js';
export type { CLIPTextSpec, TokenizerLimits } from './config.js';
