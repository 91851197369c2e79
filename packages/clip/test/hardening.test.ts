// Hostile prompts and text-encoder configs (issue 20 items 8 and 12): truncating encode stops
// tokenizing once enough tokens exist and a huge single word is not quadratic, with the kept ids
// exactly transformers'; the O(n log n) BPE equals bpe()'s rounds on every word tried; configs that
// contradict themselves or their tokenizer are ConfigErrors at config-read time.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, FolderSource, InvalidArgumentError } from '@ssd/tensor';
import { checkPromptLengthsMatch, checkTokenizerFitsEncoder, CLIPTextModel, CLIPTokenizer, parseCLIPTextConfig, type CLIPTextConfig } from '@ssd/clip';
import { BytePairEncoder } from '../src/tokenizer-bpe.js';
import { fixturesDir, prng, testContext } from '../../../testing/index.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
const tmp = mkdtempSync(join(tmpdir(), 'ssd-clip-hard-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let tok: CLIPTokenizer;
let ranks: Map<string, number>;
beforeAll(async () => {
  tok = await CLIPTokenizer.fromPretrained(model, 'tokenizer');
  const lines = readFileSync(join(model, 'tokenizer/merges.txt'), 'utf8').split('\n').slice(1).filter((l) => l);
  ranks = new Map(lines.map((l, i) => [l, i]));
});

/** transformers' CLIPTokenizer.bpe as written there (a round merges every occurrence of the best pair): the oracle. */
function referenceBpe(word: string, r: ReadonlyMap<string, number>): string[] {
  let symbols = word.split('');
  symbols[symbols.length - 1] += '</w>';
  while (symbols.length > 1) {
    let best = Infinity;
    let left = '';
    let right = '';
    for (let i = 0; i + 1 < symbols.length; i++) {
      const k = r.get(`${symbols[i]} ${symbols[i + 1]}`);
      if (k !== undefined && k < best) [best, left, right] = [k, symbols[i], symbols[i + 1]];
    }
    if (best === Infinity) break;
    const merged: string[] = [];
    for (let i = 0; i < symbols.length; i++) {
      if (i + 1 < symbols.length && symbols[i] === left && symbols[i + 1] === right) merged.push(left + symbols[++i]);
      else merged.push(symbols[i]);
    }
    symbols = merged;
  }
  return symbols;
}

describe('the O(n log n) BPE equals transformers’ bpe()', () => {
  it('on 3,000 words: real-looking, repetitive, random, and on a merge table whose later merges outrank earlier ones', () => {
    const bpe = new BytePairEncoder(ranks);
    const rnd = prng('bpe words');
    const alphabet = 'abcdefghijklmnopqrstuvwxyz';
    const words: string[] = ['a', 'aa', 'aaaaaaaaaaaaa', 'abababababab', 'lowerlowerlower', 'photorealistic', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'];
    for (let i = 0; i < 3000; i++) {
      const len = 1 + Math.floor(rnd() * (i < 2500 ? 24 : 300));
      const pool = i % 3 === 0 ? 'ab' : i % 3 === 1 ? 'etaoinshr' : alphabet;
      words.push(Array.from({ length: len }, () => pool[Math.floor(rnd() * pool.length)]).join(''));
    }
    for (const w of words) expect(bpe.encode(w), w).toEqual(referenceBpe(w, ranks));
    // a table where merging creates a pair ranked before the current one: rounds must still merge
    // only the occurrences present at their start
    const odd = new Map([['a b', 1], ['b a', 2], ['ab a', 0], ['a ab', 3], ['ab ab', 4]]);
    const oddBpe = new BytePairEncoder(odd);
    for (const w of ['ababa', 'abababab', 'aabab', 'babab', 'abaab']) expect(oddBpe.encode(w), w).toEqual(referenceBpe(w, odd));
  });
});

describe('truncating encode does bounded work (item 12)', () => {
  it('keeps the exact ids of a long, varied prompt and counts the cut tokens exactly when it read it all', () => {
    const rnd = prng('long prompt');
    const words = ['a', 'photo', 'of', 'Σοφία', 'café', 'e\u0301', '東京', 'tower,', 'ﬁne', "it's", '\u200bzw', 'ΣΑΣ', '🙂', 'x\u0301\u0316'];
    const seps = [' ', '  ', '\t', '\n', '\u3000', '\u00a0', '\r\n'];
    let prompt = '';
    while (prompt.length < 30_000) prompt += words[Math.floor(rnd() * words.length)] + seps[Math.floor(rnd() * seps.length)];
    const all = tok.encodeUntruncated(prompt);
    const enc = tok.encode(prompt);
    expect(enc.ids).toEqual([...all.slice(0, 76), all[all.length - 1]]);
    expect(all.length - 2).toBeGreaterThan(75 + 4096); // longer than what is counted
    expect(enc.complete).toBe(false);
    expect(enc.truncatedTokens).toBeGreaterThanOrEqual(4096);
    expect(enc.truncatedTokens).toBeLessThanOrEqual(all.length - 77);
    const shorter = prompt.slice(0, 6000);
    const exact = tok.encode(shorter);
    expect(exact.complete).toBe(true);
    expect(exact.truncatedTokens).toBe(tok.encodeUntruncated(shorter).length - 77);
    expect(exact.tokens).toEqual(tok.tokenize(shorter));
  });

  it('a 5 MB prompt stops after a bounded number of tokens', () => {
    const prompt = 'a red cube on a blue table, '.repeat(200_000);
    const enc = tok.encode(prompt);
    expect(enc.complete).toBe(false);
    expect(enc.tokens.length).toBeLessThanOrEqual(75 + 4096 + 4096); // the limit plus at most one 4096-character chunk
    expect(enc.ids).toEqual(tok.encodeUntruncated(prompt.slice(0, 1000)).slice(0, 76).concat(tok.eosTokenId));
  });

  it('a 120 KB single word keeps the exact first ids and says the count is a lower bound', () => {
    const rnd = prng('one word');
    const word = Array.from({ length: 120_000 }, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(rnd() * 26)]).join('');
    let t0 = performance.now();
    const enc = tok.encode(word);
    const encodeMs = performance.now() - t0;
    expect(enc.complete).toBe(false);
    expect(enc.truncatedTokens).toBeGreaterThan(0);
    t0 = performance.now();
    const exact = tok.encodeUntruncated(word); // the whole word, in O(n log n)
    console.log(`120 KB word: encode ${encodeMs.toFixed(0)} ms (first 16,384 characters), encodeUntruncated ${(performance.now() - t0).toFixed(0)} ms`);
    expect(enc.ids).toEqual([...exact.slice(0, 76), tok.eosTokenId]);
  });
});

const te1Config = (): CLIPTextConfig => JSON.parse(readFileSync(join(model, 'text_encoder/config.json'), 'utf8'));

describe('text encoder configs that contradict themselves or their tokenizer (item 8)', () => {
  const cases: [string, Partial<Record<string, unknown>>, string, RegExp][] = [
    ['a negative layer_norm_eps', { layer_norm_eps: -10 }, 'layer_norm_eps', /must be a number in \(0, 1\)/],
    ['10⁸ positions', { max_position_embeddings: 1e8 }, 'max_position_embeddings', /must be at most 8,192/],
    ['10⁹ tokens', { vocab_size: 1e9 }, 'vocab_size', /must be at most 1,048,576/],
    ['a string width', { hidden_size: '24' }, 'hidden_size', /must be a positive integer/],
    ['heads that do not divide the width', { num_attention_heads: 5 }, 'num_attention_heads', /does not split into 5 heads/],
    ['an eos id past the vocabulary', { vocab_size: 100, eos_token_id: 49407 }, 'eos_token_id', /must be a token id in \[0, vocab_size = 100\)/],
  ];
  for (const [name, change, key, message] of cases) {
    it(`${name}: a ConfigError naming the file and key`, () => {
      let err: unknown;
      try {
        parseCLIPTextConfig({ ...te1Config(), ...change } as CLIPTextConfig, 'text_encoder_2/config.json');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).key).toBe(key);
      expect((err as Error).message).toMatch(/^text_encoder_2\/config\.json: /);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('fromPretrained refuses such a config before reading any weight (not blamed on the device)', async () => {
    const ctx = await testContext();
    const dir = join(tmp, 'positions');
    cpSync(model, dir, { recursive: true });
    writeFileSync(join(dir, 'text_encoder/config.json'), JSON.stringify({ ...te1Config(), max_position_embeddings: 1e8 }));
    rmSync(join(dir, 'text_encoder/model.safetensors')); // never reached
    const before = ctx.memory.liveBytes;
    const e = await CLIPTextModel.fromPretrained(new FolderSource(dir), 'text_encoder', { context: ctx, dtype: 'f32' }).catch((x: Error) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(/text_encoder\/config\.json: config key "max_position_embeddings" = 100,000,000/);
    expect(ctx.memory.liveBytes).toBe(before);
  });

  it("a tokenizer's model_max_length beyond the positions, ids beyond vocab_size, and two tokenizers of different lengths", () => {
    const spec = parseCLIPTextConfig(te1Config());
    expect(() => checkTokenizerFitsEncoder(tok, spec, 'tokenizer', 'text_encoder/config.json')).not.toThrow();
    const long = { modelMaxLength: 200, maxTokenId: tok.maxTokenId };
    expect(() => checkTokenizerFitsEncoder(long, spec, 'tokenizer_2', 'text_encoder_2/config.json')).toThrow(
      /tokenizer_2\/tokenizer_config\.json: config key "model_max_length" = 200: is more than text_encoder_2\/config\.json's max_position_embeddings \(77\)/,
    );
    const small = parseCLIPTextConfig({ ...te1Config(), vocab_size: 1000 });
    expect(() => checkTokenizerFitsEncoder(tok, small, 'tokenizer', 'text_encoder/config.json')).toThrow(/config key "vocab_size" = 1000: is too small for tokenizer, whose ids go up to 49407/);
    expect(tok.maxTokenId).toBe(49407);
    expect(() => checkPromptLengthsMatch(tok, { modelMaxLength: 10, maxTokenId: 49407 })).toThrow(/tokenizer_2\/tokenizer_config\.json: config key "model_max_length" = 10: differs from tokenizer's 77/);
  });

  it('encode refuses a token id past the vocabulary instead of reading outside the table', async () => {
    const ctx = await testContext();
    const te = await CLIPTextModel.fromPretrained(new FolderSource(model), 'text_encoder', { context: ctx, dtype: 'f32' });
    try {
      const ids = tok.encode('a red cube').ids;
      ids[3] = 60_000;
      expect(() => te.encode([ids])).toThrow(InvalidArgumentError);
      expect(() => te.encode([ids])).toThrow(/token id 60000 at \[0, 3\] is outside the vocabulary \[0, 49408\)/);
    } finally {
      te.dispose();
    }
  });
});
