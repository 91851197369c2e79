/**
 * @ssd/clip — the exact CLIP BPE tokenizer (transformers' CLIPTokenizer) and the two SDXL text
 * encoders: CLIPTextModel (CLIP-L) and CLIPTextModelWithProjection (OpenCLIP bigG).
 */
export { CLIPTokenizer } from './tokenizer.js';
export type { EncodeOptions, TokenizerEncoding, TokenizerLoadOptions, DecodeOptions, TokenizerFileTexts } from './tokenizer.js';
export { CLIPTextModel, CLIPTextModelWithProjection } from './clip-text-model.js';
export type { CLIPTextConfig, CLIPLoadOptions, CLIPEncodeOptions, CLIPTextOutput } from './clip-text-model.js';
