// CLIPTokenizer: prompt → CLIP token ids exactly as transformers' slow CLIPTokenizer (v4.37, ftfy not
// installed) when diffusers' StableDiffusionXLPipeline calls it (padding="max_length", max_length=77,
// truncation=True). Added/special tokens are split out first, the rest is cleaned (text-normalize.ts),
// cut by CLIP's regex and byte-pair encoded (tokenizer-bpe.ts). Browser, Deno and Node alike.

import { allInOrder, InvalidArgumentError, openModelSource, type HttpOptions, type ModelSource } from '@ssd/tensor';
import { cleanText, isSpaceSeparator } from './text-normalize.js';
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
  /**
   * How many prompt tokens truncation cut off (0 when none), so callers can warn. Exact when
   * `complete`; otherwise a lower bound (see `complete`).
   */
  truncatedTokens: number;
  /** The prompt's tokens before truncation: all of them when `complete`, else the first ones (tokens.slice(ids-kept) were cut off). */
  tokens: string[];
  /**
   * Whether the whole prompt was tokenized. With truncation, tokenizing stops once the prompt has
   * yielded TOKENS_COUNTED_PAST_CUT more tokens than fit (so a 50 MB prompt costs what a short one
   * does), and a run of more than MAX_RUN_CHARS characters without whitespace is tokenized as if
   * broken there (so one 120 KB word cannot take minutes); either makes this false. The kept ids are
   * exact whenever they come before any such break — always, for prompts a person writes.
   */
  complete: boolean;
}

/** With truncation, how many tokens past the cut are still counted for `truncatedTokens`. */
export const TOKENS_COUNTED_PAST_CUT = 4096;
/** With truncation, the longest whitespace-free run tokenized in one piece (see TokenizerEncoding.complete). */
export const MAX_RUN_CHARS = 1 << 14;
/** Text is cleaned and split in chunks of about this many characters, ending at whitespace. */
const CHUNK_CHARS = 4096;

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
  /** The largest id this tokenizer can produce (vocab.json and added tokens), to check against an encoder's vocab_size. */
  readonly maxTokenId: number;

  private readonly data: TokenizerData;
  private readonly bpe: BytePairEncoder;
  /** Leftmost-longest match of any added token, like transformers' Trie.split; null when there are none. */
  private readonly addedPattern: RegExp | null;
  private idToToken: Map<number, string> | null = null;

  private constructor(data: TokenizerData) {
    this.data = data;
    this.bpe = new BytePairEncoder(data.mergeRanks);
    this.vocabSize = data.vocab.size;
    let maxId = -1;
    for (const id of data.vocab.values()) if (id > maxId) maxId = id;
    for (const id of data.addedTokens.values()) if (id > maxId) maxId = id;
    this.maxTokenId = maxId;
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
    return this.collect(text, Infinity).tokens;
  }

  /**
   * The prompt's tokens, stopping once there are `limit` of them (Infinity: all, exactly as
   * transformers). Added tokens are split out first, then each stretch between them is tokenized.
   */
  private collect(text: string, limit: number): { tokens: string[]; complete: boolean } {
    if (typeof text !== 'string') throw new InvalidArgumentError(`CLIPTokenizer: the prompt must be a string, got ${typeof text}`);
    const out: string[] = [];
    let complete = true;
    const plain = (piece: string): boolean => {
      const r = this.tokenizePlain(piece, out, limit);
      complete &&= !r.broken;
      return !r.stopped;
    };
    const pattern = this.addedPattern;
    let start = 0;
    if (pattern) {
      pattern.lastIndex = 0;
      for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
        if (!plain(text.slice(start, m.index)) || out.length >= limit) return { tokens: out, complete: false };
        out.push(m[0]);
        start = m.index + m[0].length;
      }
    }
    if (!plain(text.slice(start))) complete = false;
    return { tokens: out, complete };
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
    const { tokens, complete } = this.collect(text, truncation ? maxLength - 2 + TOKENS_COUNTED_PAST_CUT : Infinity);
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
    return { ids, attentionMask, truncatedTokens, tokens, complete };
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

  /**
   * Appends the tokens of text without added tokens. `stopped`: it stopped at `limit` tokens with text
   * left; `broken`: it broke an over-long whitespace-free run (MAX_RUN_CHARS). With a finite limit the text goes in chunks that end at whitespace (\t \n \r or
   * Zs, which the clean-up turns into the spaces its pieces are split at, and which no pre-token or NFC
   * composition spans), so the tokens are those of the whole text, chunk by chunk.
   */
  private tokenizePlain(piece: string, out: string[], limit: number): { stopped: boolean; broken: boolean } {
    const add = (text: string) => {
      for (const word of preTokenize(cleanText(text))) for (const t of this.bpe.encode(word)) out.push(t);
    };
    let broken = false;
    if (limit === Infinity) {
      if (piece) add(piece);
      return { stopped: false, broken };
    }
    for (let start = 0; start < piece.length; ) {
      if (out.length >= limit) return { stopped: true, broken };
      let end = piece.length;
      if (end - start > CHUNK_CHARS) {
        const stop = Math.min(piece.length, start + MAX_RUN_CHARS);
        end = start + CHUNK_CHARS;
        while (end < stop && !isChunkBreak(piece.charCodeAt(end))) end++;
        if (end === stop && stop < piece.length && !isChunkBreak(piece.charCodeAt(end))) {
          if (isHighSurrogate(piece.charCodeAt(end - 1))) end--; // keep a surrogate pair whole
          broken = true;
        }
      }
      add(piece.slice(start, end));
      start = end;
    }
    return { stopped: false, broken };
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

/** Characters the clean-up turns into a space: a chunk may end before one. */
function isChunkBreak(c: number): boolean {
  return c === 0x09 || c === 0x0a || c === 0x0d || isSpaceSeparator(c);
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
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
