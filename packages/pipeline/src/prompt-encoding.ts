// encode_prompt of diffusers' StableDiffusionXLPipeline (v0.26): both tokenizers and text encoders,
// the penultimate hidden states concatenated (77 × (768 + 1280)), the pooled projected bigG output,
// zero negative embeddings when no negative prompt is given (force_zeros_for_empty_prompt), and the
// batch laid out as the UNet wants it: [uncond × B·n, cond × B·n].
import { InvalidArgumentError, type Tensor } from '@ssd/tensor';
import { concatChannels } from '@ssd/kernels';
import type { CLIPTextModel, CLIPTokenizer } from '@ssd/clip';
import { gatherBatch, zerosLike } from './batch.js';

export interface TextEncoders {
  tokenizer: CLIPTokenizer;
  tokenizer2: CLIPTokenizer;
  textEncoder: CLIPTextModel;
  textEncoder2: CLIPTextModel;
}

export interface PromptInputs {
  prompt: string[];
  prompt2?: string[];
  negativePrompt?: string[];
  negativePrompt2?: string[];
  numImagesPerPrompt: number;
  guidance: boolean;
  forceZerosForEmptyPrompt: boolean;
}

export interface EncodedPrompt {
  /** [rows, 77, 2048]: rows = (guidance ? 2 : 1) · B · n, uncond rows first. */
  promptEmbeds: Tensor;
  /** [rows, 1280]. */
  pooled: Tensor;
  /** Prompts whose tokens were cut at 77 (for a warning): [text, number of tokens cut]. */
  truncated: [string, number][];
  negativeIsZero: boolean;
  dispose(): void;
}

export function encodePrompt(enc: TextEncoders, p: PromptInputs): EncodedPrompt {
  const b = p.prompt.length;
  const n = p.numImagesPerPrompt;
  const prompt2 = p.prompt2 ?? p.prompt;
  if (prompt2.length !== b) throw new InvalidArgumentError(`prompt2 has ${prompt2.length} entries, prompt has ${b}`);
  const zeroNegative = p.guidance && p.negativePrompt === undefined && p.forceZerosForEmptyPrompt;
  let neg1: string[] = [];
  let neg2: string[] = [];
  if (p.guidance && !zeroNegative) {
    neg1 = p.negativePrompt ?? [''];
    if (neg1.length === 1 && b > 1) neg1 = Array(b).fill(neg1[0]);
    neg2 = p.negativePrompt2 ?? neg1;
    if (neg2.length === 1 && b > 1) neg2 = Array(b).fill(neg2[0]);
    if (neg1.length !== b || neg2.length !== b) {
      throw new InvalidArgumentError(`negativePrompt has ${neg1.length} entries (negativePrompt2 ${neg2.length}), prompt has ${b}: give one, or one per prompt`);
    }
  }
  const truncated: [string, number][] = [];
  const tokenize = (tok: CLIPTokenizer, texts: string[]) =>
    texts.map((t) => {
      const e = tok.encode(t);
      if (e.truncatedTokens > 0) truncated.push([t, e.truncatedTokens]);
      return e.ids;
    });
  // one encoder pass over [negatives…, prompts…]
  const ids1 = tokenize(enc.tokenizer, [...neg1, ...p.prompt]);
  const ids2 = tokenize(enc.tokenizer2, [...neg2, ...prompt2]);
  const o1 = enc.textEncoder.encode(ids1, { hiddenStates: [-2] });
  const o2 = enc.textEncoder2.encode(ids2, { hiddenStates: [-2], pooled: true });
  const both = concatChannels(o1.hiddenStates.get(-2)!, o2.hiddenStates.get(-2)!);
  const pooledAll = o2.textEmbeds!;
  o1.dispose();
  o2.hiddenStates.get(-2)!.dispose();
  o2.pooled?.dispose();
  const encodedNeg = neg1.length;
  // rows of the encoded batch: negatives at 0..encodedNeg-1, prompts after
  const condRows = Array.from({ length: b * n }, (_, i) => encodedNeg + Math.floor(i / n));
  let promptEmbeds: Tensor;
  let pooled: Tensor;
  if (!p.guidance) {
    promptEmbeds = gatherBatch([both], condRows.map((row) => ({ from: 0, row })), 'prompt embeds');
    pooled = gatherBatch([pooledAll], condRows.map((row) => ({ from: 0, row })), 'pooled embeds');
  } else if (zeroNegative) {
    const z = zerosLike(both);
    const zp = zerosLike(pooledAll);
    const picks = [...condRows.map(() => ({ from: 1, row: 0 })), ...condRows.map((row) => ({ from: 0, row }))];
    promptEmbeds = gatherBatch([both, z], picks, 'prompt embeds');
    pooled = gatherBatch([pooledAll, zp], picks, 'pooled embeds');
    z.dispose();
    zp.dispose();
  } else {
    const uncondRows = Array.from({ length: b * n }, (_, i) => Math.floor(i / n));
    const picks = [...uncondRows, ...condRows].map((row) => ({ from: 0, row }));
    promptEmbeds = gatherBatch([both], picks, 'prompt embeds');
    pooled = gatherBatch([pooledAll], picks, 'pooled embeds');
  }
  both.dispose();
  pooledAll.dispose();
  return {
    promptEmbeds,
    pooled,
    truncated,
    negativeIsZero: zeroNegative,
    dispose() {
      promptEmbeds.dispose();
      pooled.dispose();
    },
  };
}
