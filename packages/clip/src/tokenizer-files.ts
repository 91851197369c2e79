// Parsing a CLIP tokenizer folder's four files (vocab.json, merges.txt, special_tokens_map.json,
// tokenizer_config.json) into the maps and special tokens CLIPTokenizer needs. Every problem is a
// ModelLoadError naming the file. transformers: CLIPTokenizer.__init__, PreTrainedTokenizer.__init__.

import { ModelLoadError } from '@ssd/tensor';

/** The texts of a tokenizer folder's files. Only vocab and merges are required. */
export interface TokenizerFileTexts {
  /** vocab.json: {token: id}. */
  vocab: string;
  /** merges.txt: a header line, then "left right" per line. */
  merges: string;
  specialTokensMap?: string;
  tokenizerConfig?: string;
  /** Where the texts came from (a folder path or URL), for error messages. */
  origin?: string;
}

/** Everything parsed from the files. */
export interface TokenizerData {
  vocab: Map<string, number>;
  /** "left right" → rank. */
  mergeRanks: Map<string, number>;
  /** Added and special tokens: split out of the text before clean-up, never BPE-encoded. */
  addedTokens: Map<string, number>;
  bosToken: string;
  eosToken: string;
  unkToken: string;
  /** null when the folder declares no pad token. */
  padToken: string | null;
  /** bos, eos, unk, pad and additional special tokens (what skip_special_tokens drops). */
  specialTokens: string[];
  modelMaxLength: number;
  /** tokenizer_config.json "clean_up_tokenization_spaces" (transformers' default: true), for decode(). */
  cleanUpTokenizationSpaces: boolean;
}

/** CLIPTokenizer keeps merges.txt lines 1 … 49152 − 256 − 2 (the ranks openai/CLIP trained with). */
export const MAX_MERGES = 49152 - 256 - 2;

/** diffusers' CLIP tokenizers say 77; configs without a sane value fall back to it. */
const DEFAULT_MAX_LENGTH = 77;

const PY_STRIP = /^[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;
/** Two symbols and one space; excludes JS \s and the rest of Python's whitespace (U+FEFF lines go the slow way). */
const SIMPLE_PAIR = /^[^\s\x1c-\x1f\x85]+ [^\s\x1c-\x1f\x85]+$/;
const PY_SPLIT = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

export function parseTokenizerFiles(files: TokenizerFileTexts): TokenizerData {
  const where = (name: string) => (files.origin ? `${files.origin.replace(/\/+$/, '')}/${name}` : name);
  const vocab = parseVocab(files.vocab, where('vocab.json'));
  const mergeRanks = parseMerges(files.merges, where('merges.txt'), vocab);
  const config = files.tokenizerConfig === undefined ? {} : parseObject(files.tokenizerConfig, where('tokenizer_config.json'));
  const map = files.specialTokensMap === undefined ? {} : parseObject(files.specialTokensMap, where('special_tokens_map.json'));

  // special_tokens_map.json overrides tokenizer_config.json, which overrides CLIPTokenizer's defaults
  const special = (key: string, fallback: string | null): string | null => {
    if (Object.hasOwn(map, key)) return tokenContent(map[key], where('special_tokens_map.json'), key);
    if (Object.hasOwn(config, key)) return tokenContent(config[key], where('tokenizer_config.json'), key);
    return fallback;
  };
  const bosToken = special('bos_token', '<|startoftext|>') ?? '<|startoftext|>';
  const eosToken = special('eos_token', '<|endoftext|>') ?? '<|endoftext|>';
  const unkToken = special('unk_token', '<|endoftext|>') ?? '<|endoftext|>';
  const padToken = special('pad_token', '<|endoftext|>');
  const extra = additionalSpecialTokens(map, config, where);
  const specialTokens = [bosToken, eosToken, unkToken, padToken, ...extra].filter((t): t is string => !!t);

  const addedTokens = parseAddedTokens(config, where('tokenizer_config.json'));
  // PreTrainedTokenizer.__init__ adds every special token not yet added: its vocab id when it has one,
  // else the next free id. Order: bos, eos, unk, pad, additional (SPECIAL_TOKENS_ATTRIBUTES).
  let nextId = vocab.size;
  for (const t of addedTokens.keys()) if (!vocab.has(t)) nextId++;
  for (const t of specialTokens) if (!addedTokens.has(t)) addedTokens.set(t, vocab.get(t) ?? nextId++);

  const max = config.model_max_length;
  const modelMaxLength = typeof max === 'number' && Number.isInteger(max) && max >= 2 && max <= 1_000_000 ? max : DEFAULT_MAX_LENGTH;
  const cleanUpTokenizationSpaces = config.clean_up_tokenization_spaces !== false;
  return {
    vocab, mergeRanks, addedTokens, bosToken, eosToken, unkToken, padToken, specialTokens, modelMaxLength, cleanUpTokenizationSpaces,
  };
}

function parseVocab(text: string, file: string): Map<string, number> {
  const obj = parseObject(text, file);
  const vocab = new Map<string, number>();
  for (const token in obj) {
    const id = obj[token];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new ModelLoadError(`${file}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}; ids must be non-negative integers`);
    }
    vocab.set(token, id);
  }
  if (vocab.size === 0) throw new ModelLoadError(`${file}: the vocabulary is empty`);
  return vocab;
}

/**
 * merges.txt as CLIPTokenizer reads it: strip, split on "\n", drop line 0 (the #version header). Then
 * checked as transformers' fast tokenizer (tokenizers' BPE builder) checks it, so that a damaged or
 * mismatched file is an error rather than a silently different tokenizer: both symbols of every merge
 * and the token it makes are in vocab.json, and the number of merges fits the vocabulary.
 */
function parseMerges(text: string, file: string, vocab: Map<string, number>): Map<string, number> {
  const lines = text.replace(PY_STRIP, '').split('\n');
  const count = Math.min(lines.length - 1, MAX_MERGES);
  const ranks = new Map<string, number>();
  for (let i = 1; i <= count; i++) {
    let left: string;
    let right: string;
    // fast path: the line is already the "left right" key (what every real merges.txt holds)
    if (SIMPLE_PAIR.test(lines[i])) {
      const space = lines[i].indexOf(' ');
      left = lines[i].slice(0, space);
      right = lines[i].slice(space + 1);
    } else {
      const parts = lines[i].split(PY_SPLIT).filter((p) => p.length > 0);
      if (parts.length !== 2) {
        throw new ModelLoadError(
          `${file}: line ${i + 1} must hold two symbols separated by a space, got ${JSON.stringify(lines[i].slice(0, 80))}`,
        );
      }
      [left, right] = parts;
    }
    for (const token of [left, right, left + right]) {
      if (!vocab.has(token)) {
        throw new ModelLoadError(
          `${file}: line ${i + 1} (${JSON.stringify(`${left} ${right}`.slice(0, 80))}) needs the token ${JSON.stringify(token.slice(0, 80))}, which vocab.json does not hold: the two files do not belong together or one is damaged`,
        );
      }
    }
    // a repeated pair keeps its last rank, as Python's dict(zip(merges, range(...))) does
    ranks.set(`${left} ${right}`, i - 1);
  }
  if (ranks.size === 0) throw new ModelLoadError(`${file}: no merges after the header line`);
  checkMergeCount(count, vocab.size, file);
  return ranks;
}

/**
 * CLIP's vocabulary is the 256 byte symbols, the same 256 ending a word ("a</w>"), one token per merge
 * and the two special tokens: openai/CLIP's 49,408 tokens with 48,894 merges. A merges.txt cut short at a
 * line break passes every per-line check; its count gives it away. vocab.json may hold a few more tokens
 * than that layout (added words), hence the 1% slack.
 */
function checkMergeCount(count: number, vocabSize: number, file: string): void {
  const expected = vocabSize - 2 * 256 - 2;
  if (Math.abs(count - expected) <= Math.max(1, Math.floor(vocabSize / 100))) return;
  const firstBad = Math.min(count, expected) + 2; // 1-based, after the header line
  throw new ModelLoadError(
    `${file}: ${count.toLocaleString('en-US')} merges for the ${vocabSize.toLocaleString('en-US')} tokens of vocab.json, ` +
      `which a CLIP tokenizer builds from ${expected.toLocaleString('en-US')} (256 bytes, 256 word-final bytes and 2 special tokens besides): ` +
      (count < expected ? `the file ends at line ${firstBad - 1}, cut short` : `line ${firstBad} on are more merges than the vocabulary holds`) +
      ', or the two files do not belong together',
  );
}

type JsonObject = Record<string, unknown>;

function parseObject(text: string, file: string): JsonObject {
  let value: unknown;
  try {
    // a UTF-8 byte-order mark is not JSON; fetch() strips it, Node's readFile does not
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    throw new ModelLoadError(`${file}: invalid JSON (${(e as Error).message})`, { cause: e });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelLoadError(`${file}: expected a JSON object at the top level`);
  }
  return value as JsonObject;
}

/** A special token is a string, an AddedToken object {content, lstrip, rstrip, ...}, or null. */
function tokenContent(value: unknown, file: string, key: string): string | null {
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  throw new ModelLoadError(`${file}: "${key}" must be a string or an object with a string "content", got ${JSON.stringify(value)}`);
}

/** additional_special_tokens from tokenizer_config.json, then new ones from special_tokens_map.json. */
function additionalSpecialTokens(map: JsonObject, config: JsonObject, where: (name: string) => string): string[] {
  const out: string[] = [];
  for (const [source, name] of [[config, 'tokenizer_config.json'], [map, 'special_tokens_map.json']] as const) {
    const list = source.additional_special_tokens;
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw new ModelLoadError(`${where(name)}: "additional_special_tokens" must be a list`);
    list.forEach((v, i) => {
      const t = tokenContent(v, where(name), `additional_special_tokens[${i}]`);
      if (t && !out.includes(t)) out.push(t);
    });
  }
  return out;
}

/** tokenizer_config.json "added_tokens_decoder": {"id": {content, ...}}. */
function parseAddedTokens(config: JsonObject, file: string): Map<string, number> {
  const added = new Map<string, number>();
  const decoder = config.added_tokens_decoder;
  if (decoder === undefined || decoder === null) return added;
  if (typeof decoder !== 'object' || Array.isArray(decoder)) throw new ModelLoadError(`${file}: "added_tokens_decoder" must be an object`);
  for (const [key, value] of Object.entries(decoder as JsonObject)) {
    const id = Number(key);
    if (!Number.isInteger(id) || id < 0) throw new ModelLoadError(`${file}: added_tokens_decoder key "${key}" is not a token id`);
    const content = tokenContent(value, file, `added_tokens_decoder.${key}`);
    if (content) added.set(content, id);
  }
  return added;
}
