// CLIPTokenizer: prompt → CLIP token ids exactly as transformers' slow CLIPTokenizer (v4.37, ftfy not
// installed) when diffusers' StableDiffusionXLPipeline calls it (padding="max_length", max_length=77,
// truncation=True). Added/special tokens are split out first, the rest is cleaned (text-normalize.ts),
// cut by CLIP's regex and byte-pair encoded (tokenizer-bpe.ts). Browser, Deno and Node alike.

import { allInOrder, InvalidArgumentError, openModelSource, type HttpOptions, type ModelSource } from '@ssd/tensor';
import { cleanText } from './text-normalize.js';
import { BytePairEncoder, fromByteSymbols, preTokenize } from './tokenizer-bpe.js';
import { parseTokenizerFiles, type TokenizerData, type TokenizerFileTexts } from './tokenizer-files.js';
import { readTokenizerText } from './tokenizer-file-text.js';

export type { TokenizerFileTexts } from './tokenizer-files.js';

export interface EncodeOptions {
  /** Length of the result with BOS and EOS; default the folder's model_max_length (77). */
  maxLength?: number;
  /** Keep BOS + the first maxLength − 2 tokens + EOS (default true). */
  truncation?: boolean;
  /** 'max_length' (default) pads with the folder's pad token; 'do_not_pad' leaves the length as is. */
  padding?: 'max_length' | 'do_not_pad';
}

export interface TokenizerEncoding {
  /** BOS, tokens, EOS, then padding. */
  ids: number[];
  /** 1 for BOS, tokens and EOS; 0 for padding. */
  attentionMask: number[];
  /** How many prompt tokens truncation cut off (0 when none), so callers can warn. */
  truncatedTokens: number;
  /** Every token of the prompt, before truncation (tokens.slice(ids-kept) are the ones cut off). */
  tokens: string[];
}

export interface TokenizerLoadOptions {
  /** Headers or fetch for URL sources. */
  http?: HttpOptions;
}

export interface DecodeOptions {
  /** Drop bos/eos/unk/pad and additional special tokens (default false, as transformers). */
  skipSpecialTokens?: boolean;
}

/** The four files of a diffusers tokenizer folder; only the first two are required. */
const FILES = ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json'] as const;

export class CLIPTokenizer {
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly unkTokenId: number;
  /** null when the folder declares no pad token (then padding: 'max_length' is an error). */
  readonly padTokenId: number | null;
  readonly padToken: string | null;
  readonly modelMaxLength: number;
  /** Base vocabulary size (vocab.json entries). */
  readonly vocabSize: number;

  private readonly data: TokenizerData;
  private readonly bpe: BytePairEncoder;
  /** Leftmost-longest match of any added token, like transformers' Trie.split; null when there are none. */
  private readonly addedPattern: RegExp | null;
  private idToToken: Map<number, string> | null = null;

  private constructor(data: TokenizerData) {
    this.data = data;
    this.bpe = new BytePairEncoder(data.mergeRanks);
    this.vocabSize = data.vocab.size;
    this.unkTokenId = this.lookup(data.unkToken, data.vocab.size);
    this.bosTokenId = this.tokenToId(data.bosToken);
    this.eosTokenId = this.tokenToId(data.eosToken);
    this.padToken = data.padToken;
    this.padTokenId = data.padToken === null ? null : this.tokenToId(data.padToken);
    this.modelMaxLength = data.modelMaxLength;
    const added = [...data.addedTokens.keys()].filter((t) => t.length > 0).sort((a, b) => b.length - a.length);
    this.addedPattern = added.length ? new RegExp(added.map(escapeRegExp).join('|'), 'g') : null;
  }

  /**
   * Loads `subfolder` ('tokenizer' or 'tokenizer_2' in an SDXL folder; '' for the root) of a diffusers
   * model: a local path (Node, Deno), a URL base, or any ModelSource (e.g. files picked in a browser).
   */
  static async fromPretrained(source: string | ModelSource, subfolder = 'tokenizer', options: TokenizerLoadOptions = {}): Promise<CLIPTokenizer> {
    const src = openModelSource(source, options.http);
    const dir = subfolder.replace(/^\/+|\/+$/g, '');
    const path = (name: string) => (dir ? `${dir}/${name}` : name);
    // In file order, so a missing-file error always names vocab.json first, whichever read fails first.
    const [vocab, merges, specialTokensMap, tokenizerConfig] = await allInOrder(
      FILES.map(async (name, i) => (i < 2 || (await src.exists(path(name))) ? readTokenizerText(src, path(name)) : undefined)),
    );
    const origin = dir ? `${src.description.replace(/\/+$/, '')}/${dir}` : src.description;
    return CLIPTokenizer.fromFiles({ vocab: vocab!, merges: merges!, specialTokensMap, tokenizerConfig, origin });
  }

  /** From the files' texts, for callers that already hold them. Throws ModelLoadError naming a bad file. */
  static fromFiles(files: TokenizerFileTexts): CLIPTokenizer {
    if (typeof files?.vocab !== 'string' || typeof files.merges !== 'string') {
      throw new InvalidArgumentError('CLIPTokenizer.fromFiles: "vocab" (vocab.json text) and "merges" (merges.txt text) must be strings');
    }
    return new CLIPTokenizer(parseTokenizerFiles(files));
  }

  /** The prompt's tokens: BPE strings in the byte-level alphabet ("cat</w>") and added tokens as written; no BOS/EOS. */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw new InvalidArgumentError(`CLIPTokenizer: the prompt must be a string, got ${typeof text}`);
    const out: string[] = [];
    const pattern = this.addedPattern;
    if (!pattern) {
      this.tokenizePlain(text, out);
      return out;
    }
    let start = 0;
    pattern.lastIndex = 0;
    for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
      this.tokenizePlain(text.slice(start, m.index), out);
      out.push(m[0]);
      start = m.index + m[0].length;
    }
    this.tokenizePlain(text.slice(start), out);
    return out;
  }

  /** BOS, the prompt's ids, EOS: no truncation, no padding. */
  encodeUntruncated(text: string): number[] {
    return [this.bosTokenId, ...this.tokenize(text).map((t) => this.tokenToId(t)), this.eosTokenId];
  }

  /** What the SDXL pipeline feeds the text encoders: 77 ids by default, truncated and padded. */
  encode(text: string, options: EncodeOptions = {}): TokenizerEncoding {
    const { maxLength = this.modelMaxLength, truncation = true, padding = 'max_length' } = options;
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new InvalidArgumentError(`CLIPTokenizer.encode: maxLength must be an integer ≥ 2 (room for BOS and EOS), got ${maxLength}`);
    }
    if (padding !== 'max_length' && padding !== 'do_not_pad') {
      throw new InvalidArgumentError(`CLIPTokenizer.encode: padding must be 'max_length' or 'do_not_pad', got ${JSON.stringify(padding)}`);
    }
    const tokens = this.tokenize(text);
    let content = tokens.map((t) => this.tokenToId(t));
    let truncatedTokens = 0;
    if (truncation && content.length + 2 > maxLength) {
      if (maxLength === 2) {
        throw new InvalidArgumentError(`CLIPTokenizer.encode: maxLength 2 leaves no room for the prompt's ${content.length} tokens`);
      }
      truncatedTokens = content.length + 2 - maxLength;
      content = content.slice(0, maxLength - 2);
    }
    const ids = [this.bosTokenId, ...content, this.eosTokenId];
    const attentionMask = ids.map(() => 1);
    if (padding === 'max_length' && ids.length < maxLength) {
      if (this.padTokenId === null) {
        throw new InvalidArgumentError("CLIPTokenizer.encode: this tokenizer has no pad token; pass padding: 'do_not_pad'");
      }
      while (ids.length < maxLength) {
        ids.push(this.padTokenId);
        attentionMask.push(0);
      }
    }
    return { ids, attentionMask, truncatedTokens, tokens };
  }

  /** A token's id: added tokens first, then the vocabulary, else the unk id (transformers' order). */
  tokenToId(token: string): number {
    return this.lookup(token, this.unkTokenId);
  }

  /**
   * Text of `ids` as transformers' decode() gives it: byte-level symbols back to UTF-8 (invalid bytes →
   * U+FFFD), `</w>` → space, stripped, spaces before punctuation cleaned when the config asks. For
   * messages such as "this part of the prompt was truncated".
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const table = (this.idToToken ??= this.buildIdToToken());
    const skip = options.skipSpecialTokens ? new Set(this.data.specialTokens.map((t) => this.tokenToId(t))) : null;
    let joined = '';
    for (const id of ids) {
      if (skip?.has(id)) continue;
      const token = table.get(id);
      if (token === undefined) throw new InvalidArgumentError(`CLIPTokenizer.decode: id ${id} is not in the vocabulary (0…${table.size - 1})`);
      joined += token;
    }
    let text = new TextDecoder('utf-8').decode(fromByteSymbols(joined)).replaceAll('</w>', ' ').trim();
    if (this.data.cleanUpTokenizationSpaces) text = cleanUpTokenizationSpaces(text);
    return text;
  }

  private tokenizePlain(piece: string, out: string[]): void {
    if (!piece) return;
    for (const word of preTokenize(cleanText(piece))) for (const t of this.bpe.encode(word)) out.push(t);
  }

  private lookup(token: string, fallback: number): number {
    return this.data.addedTokens.get(token) ?? this.data.vocab.get(token) ?? fallback;
  }

  private buildIdToToken(): Map<number, string> {
    const table = new Map<number, string>();
    for (const [token, id] of this.data.vocab) table.set(id, token);
    for (const [token, id] of this.data.addedTokens) table.set(id, token);
    return table;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/** transformers' clean_up_tokenization: no space before . ? ! , and English contractions. */
function cleanUpTokenizationSpaces(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
