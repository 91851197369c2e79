// A CLIP text encoder's config.json (transformers CLIPTextConfig) read and validated once, and the
// checks that tie it to its tokenizer: every value a ConfigError naming the file and key at config
// time, never a kernel message or a "needs maxBufferSize" after the weights are loaded.
import { ConfigError } from '@ssd/tensor';
import type { Activation } from '@ssd/kernels';

/** The config.json keys we read (transformers CLIPTextConfig). */
export interface CLIPTextConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  hidden_act?: string;
  layer_norm_eps?: number;
  max_position_embeddings?: number;
  vocab_size: number;
  projection_dim?: number;
  eos_token_id?: number;
  [key: string]: unknown;
}

export interface CLIPTextSpec {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  act: Activation;
  layerNormEps: number;
  maxPositions: number;
  vocabSize: number;
  projectionDim: number;
  eosTokenId: number;
}

export const CLIP_ACTIVATIONS: Readonly<Record<string, Activation>> = { quick_gelu: 'quick_gelu', gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh' };

/**
 * Bounds far beyond any CLIP (bigG: width 1280, 32 layers, 77 positions, 49,408 tokens), so that 10⁸
 * positions or 10⁹ tokens are a ConfigError here rather than a buffer the device is blamed for.
 */
const MAX = { width: 1 << 16, layers: 256, positions: 8192, vocab: 1 << 20 } as const;

/** config.json → the numbers the model is built from; `file` names it in errors. */
export function parseCLIPTextConfig(config: CLIPTextConfig, file = 'text_encoder/config.json'): CLIPTextSpec {
  const int = (key: string, v: unknown, max: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(key, v, 'must be a positive integer', file);
    if (v > max) throw new ConfigError(key, v, `must be at most ${max.toLocaleString('en-US')} (no CLIP text encoder comes near it)`, file);
    return v;
  };
  const hiddenSize = int('hidden_size', config.hidden_size, MAX.width);
  const numHeads = int('num_attention_heads', config.num_attention_heads, hiddenSize);
  if (hiddenSize % numHeads) throw new ConfigError('num_attention_heads', numHeads, `hidden_size ${hiddenSize} does not split into ${numHeads} heads`, file);
  const act = CLIP_ACTIVATIONS[config.hidden_act ?? 'quick_gelu'];
  if (!act) throw new ConfigError('hidden_act', config.hidden_act, `supported: ${Object.keys(CLIP_ACTIVATIONS).join(', ')}`, file);
  const eps = config.layer_norm_eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0) || !(eps < 1)) throw new ConfigError('layer_norm_eps', eps, 'must be a number in (0, 1) (LayerNorm divides by √(variance + eps))', file);
  const vocabSize = int('vocab_size', config.vocab_size, MAX.vocab);
  const eos = config.eos_token_id ?? 2;
  if (typeof eos !== 'number' || !Number.isInteger(eos) || eos < 0 || eos >= vocabSize) {
    throw new ConfigError('eos_token_id', eos, `must be a token id in [0, vocab_size = ${vocabSize})`, file);
  }
  return {
    hiddenSize,
    intermediateSize: int('intermediate_size', config.intermediate_size, 4 * MAX.width),
    numLayers: int('num_hidden_layers', config.num_hidden_layers, MAX.layers),
    numHeads,
    act,
    layerNormEps: eps,
    maxPositions: int('max_position_embeddings', config.max_position_embeddings ?? 77, MAX.positions),
    vocabSize,
    projectionDim: int('projection_dim', config.projection_dim ?? hiddenSize, MAX.width),
    eosTokenId: eos,
  };
}

/** What the tokenizer checks need of a CLIPTokenizer. */
export interface TokenizerLimits {
  modelMaxLength: number;
  /** The largest id the tokenizer can produce (vocab.json and added tokens). */
  maxTokenId: number;
}

/**
 * ConfigError unless the tokenizer's sequences fit the encoder: model_max_length within
 * max_position_embeddings, and every id it can produce within vocab_size (an id past the token table
 * would read outside it on the GPU). `tokenizerDir` and `encoderFile` name the two in the message.
 */
export function checkTokenizerFitsEncoder(tokenizer: TokenizerLimits, spec: CLIPTextSpec, tokenizerDir: string, encoderFile: string): void {
  if (tokenizer.modelMaxLength > spec.maxPositions) {
    throw new ConfigError('model_max_length', tokenizer.modelMaxLength, `is more than ${encoderFile}'s max_position_embeddings (${spec.maxPositions}): the encoder has no position for the later tokens`, `${tokenizerDir}/tokenizer_config.json`);
  }
  if (tokenizer.maxTokenId >= spec.vocabSize) {
    throw new ConfigError('vocab_size', spec.vocabSize, `is too small for ${tokenizerDir}, whose ids go up to ${tokenizer.maxTokenId}`, encoderFile);
  }
}

/**
 * ConfigError unless the two tokenizers of an SDXL pipeline make sequences of one length: diffusers
 * concatenates the two encoders' hidden states token by token, so 77 and 10 cannot be joined.
 */
export function checkPromptLengthsMatch(first: TokenizerLimits, second: TokenizerLimits, firstDir = 'tokenizer', secondDir = 'tokenizer_2'): void {
  if (first.modelMaxLength !== second.modelMaxLength) {
    throw new ConfigError('model_max_length', second.modelMaxLength, `differs from ${firstDir}'s ${first.modelMaxLength}: the two text encoders' outputs are joined token by token, so both tokenizers must make sequences of one length`, `${secondDir}/tokenizer_config.json`);
  }
}
