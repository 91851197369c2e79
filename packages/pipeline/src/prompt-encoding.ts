// encode_prompt of diffusers' StableDiffusionXLPipeline (v0.26): both tokenizers and text encoders,
// hidden_states[-2] of each concatenated (77 × (768 + 1280)) — hidden_states[-(clip_skip + 2)] for the
// prompt with clip_skip, never for the negative —, the pooled projected bigG output, zero negative
// embeddings when no negative prompt is given (force_zeros_for_empty_prompt), each row repeated
// numImagesPerPrompt times; and the UNet's batch [uncond × B·n, cond × B·n] built from them.
import { InvalidArgumentError, TensorScope, type Tensor } from '@ssd/tensor';
import { concatChannels } from '@ssd/kernels';
import type { CLIPTextModel, CLIPTokenizer } from '@ssd/clip';
import { gatherBatch, zerosLike } from './batch.js';

/** diffusers' encode_prompt outputs; tensors the holder owns (free with dispose). */
export interface PromptEmbeddings {
  /** [B·n, 77, D] (D = 2048 for SDXL: CLIP-L 768 + bigG 1280). */
  promptEmbeds: Tensor;
  /** [B·n, 77, D] when classifier-free guidance is on, else null. */
  negativePromptEmbeds: Tensor | null;
  /** [B·n, P] (P = 1280: bigG's projected pooled output). */
  pooledPromptEmbeds: Tensor;
  negativePooledPromptEmbeds: Tensor | null;
  /** Prompts whose tokens were cut at 77 (for a warning): [text, number of tokens cut]. */
  /** Prompts whose tokens were cut at 77: [text, tokens cut, whether that count is exact] (a huge prompt is not tokenized to its end: the count is then a lower bound). */
  truncated: [string, number, boolean][];
  dispose(): void;
}

export interface TextEncoderSet {
  tokenizer: CLIPTokenizer;
  tokenizer2: CLIPTokenizer;
  textEncoder: CLIPTextModel;
  textEncoder2: CLIPTextModel;
}

export interface PromptInputs {
  /** Text prompts, or the given embeddings (not freed here) — exactly one of the two. */
  prompt?: string[];
  prompt2?: string[];
  given?: { promptEmbeds: Tensor; pooledPromptEmbeds: Tensor; negativePromptEmbeds: Tensor | null; negativePooledPromptEmbeds: Tensor | null };
  negativePrompt?: string[];
  negativePrompt2?: string[];
  numImagesPerPrompt: number;
  guidance: boolean;
  forceZerosForEmptyPrompt: boolean;
  clipSkip?: number;
}

/** Whether encodePrompt(p) runs the text encoders at all (precomputed embeddings with a zero or given negative do not). */
export function needsTextEncoders(p: Omit<PromptInputs, 'numImagesPerPrompt'>): boolean {
  if (!p.given) return true;
  return p.guidance && !p.given.negativePromptEmbeds && !zeroNegative(p);
}

function zeroNegative(p: Omit<PromptInputs, 'numImagesPerPrompt'>): boolean {
  return p.negativePrompt === undefined && p.forceZerosForEmptyPrompt;
}

/** diffusers' encode_prompt. `enc` may be null when needsTextEncoders(p) is false. */
export function encodePrompt(enc: TextEncoderSet | null, p: PromptInputs): PromptEmbeddings {
  const scope = new TensorScope();
  const truncated: [string, number, boolean][] = [];
  try {
    const b = p.given ? p.given.promptEmbeds.shape[0] : p.prompt!.length;
    // the negative texts to encode (none when zeroed or given)
    let neg1: string[] = [];
    let neg2: string[] = [];
    if (p.guidance && !p.given?.negativePromptEmbeds && !zeroNegative(p)) {
      neg1 = broadcast('negativePrompt', p.negativePrompt ?? [''], b);
      neg2 = broadcast('negativePrompt2', p.negativePrompt2 ?? neg1, b);
    }
    const prompt2 = p.prompt ? broadcast('prompt2', p.prompt2 ?? p.prompt, b) : [];
    let pos: Tensor, pooled: Tensor;
    let neg: Tensor | null = null;
    let negPooled: Tensor | null = null;
    if (neg1.length || p.prompt) {
      if (!enc) throw new InvalidArgumentError('encodePrompt: the text encoders are needed for these inputs');
      // one encoder pass over [negatives…, prompts…]
      const tokenize = (tok: CLIPTokenizer, texts: string[]) =>
        texts.map((t) => {
          const e = tok.encode(t);
          if (e.truncatedTokens > 0) truncated.push([t, e.truncatedTokens, e.complete]);
          return e.ids;
        });
      const texts1 = [...neg1, ...(p.prompt ?? [])];
      const ids1 = tokenize(enc.tokenizer, texts1);
      const ids2 = tokenize(enc.tokenizer2, [...neg2, ...prompt2]);
      const skip = p.prompt && p.clipSkip ? -(p.clipSkip + 2) : -2;
      const layers = Math.min(enc.textEncoder.layers.length, enc.textEncoder2.layers.length);
      if (-skip > layers + 1) throw new InvalidArgumentError(`clipSkip = ${p.clipSkip}: the text encoders have ${layers} layers, so at most ${layers - 1} can be skipped`);
      const want = skip === -2 ? [-2] : [-2, skip];
      const o1 = enc.textEncoder.encode(ids1, { hiddenStates: want });
      const o2 = enc.textEncoder2.encode(ids2, { hiddenStates: want, pooled: true });
      try {
        const both = scope.track(concatChannels(o1.hiddenStates.get(-2)!, o2.hiddenStates.get(-2)!));
        const bothSkipped = skip === -2 ? both : scope.track(concatChannels(o1.hiddenStates.get(skip)!, o2.hiddenStates.get(skip)!));
        const pooledAll = o2.textEmbeds!;
        const k = neg1.length; // rows 0..k-1 are the negatives, k.. the prompts
        const rows = (t: Tensor, first: number, label: string) => scope.track(gatherBatch([t], range(b).map((row) => ({ from: 0, row: first + row })), label));
        if (k) {
          neg = rows(both, 0, 'negative prompt embeds');
          negPooled = rows(pooledAll, 0, 'negative pooled embeds');
        }
        if (p.prompt) {
          pos = rows(bothSkipped, k, 'prompt embeds');
          pooled = rows(pooledAll, k, 'pooled prompt embeds');
        }
      } finally {
        o1.dispose();
        o2.dispose();
      }
    }
    if (p.given) {
      pos = p.given.promptEmbeds;
      pooled = p.given.pooledPromptEmbeds;
      if (p.given.negativePromptEmbeds) {
        neg = p.given.negativePromptEmbeds;
        negPooled = p.given.negativePooledPromptEmbeds;
      }
    }
    if (p.guidance && !neg) {
      neg = scope.track(zerosLike(pos!, 'negative prompt embeds'));
      negPooled = scope.track(zerosLike(pooled!, 'negative pooled embeds'));
    }
    // duplicate each row numImagesPerPrompt times (diffusers' repeat + view: rows i, i, …, i+1, …)
    const n = p.numImagesPerPrompt;
    const repeat = (t: Tensor, label: string) => scope.keep(gatherBatch([t], range(b * n).map((i) => ({ from: 0, row: Math.floor(i / n) })), label));
    const out = {
      promptEmbeds: repeat(pos!, 'prompt embeds'),
      pooledPromptEmbeds: repeat(pooled!, 'pooled prompt embeds'),
      negativePromptEmbeds: p.guidance ? repeat(neg!, 'negative prompt embeds') : null,
      negativePooledPromptEmbeds: p.guidance ? repeat(negPooled!, 'negative pooled embeds') : null,
      truncated,
      dispose() {
        for (const t of [out.promptEmbeds, out.pooledPromptEmbeds, out.negativePromptEmbeds, out.negativePooledPromptEmbeds]) t?.dispose();
      },
    };
    return out;
  } finally {
    scope.dispose();
  }
}

/** The UNet's encoder_hidden_states and text_embeds: [negatives…, prompts…] when guided (new tensors). */
export function unetConditioning(e: PromptEmbeddings): { encoderHiddenStates: Tensor; textEmbeds: Tensor } {
  if (!e.negativePromptEmbeds || !e.negativePooledPromptEmbeds) {
    return { encoderHiddenStates: copyRows(e.promptEmbeds), textEmbeds: copyRows(e.pooledPromptEmbeds) };
  }
  const rows = e.promptEmbeds.shape[0];
  const picks = [...range(rows).map((row) => ({ from: 0, row })), ...range(rows).map((row) => ({ from: 1, row }))];
  return {
    encoderHiddenStates: gatherBatch([e.negativePromptEmbeds, e.promptEmbeds], picks, 'cfg prompt embeds'),
    textEmbeds: gatherBatch([e.negativePooledPromptEmbeds, e.pooledPromptEmbeds], picks, 'cfg pooled embeds'),
  };
}

function copyRows(t: Tensor): Tensor {
  return gatherBatch([t], range(t.shape[0]).map((row) => ({ from: 0, row })), t.label);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** A list of one (repeated) or b prompts. */
function broadcast(option: string, list: string[], b: number): string[] {
  if (list.length === b) return list;
  if (list.length === 1) return Array(b).fill(list[0]);
  throw new InvalidArgumentError(`${option} has ${list.length} entries, the prompt batch has ${b}: give one, or one per prompt`);
}
