// CLIPTokenizer against transformers' slow CLIPTokenizer: every case of fixtures/tokenizer/cases.json for
// tokenizer/ and tokenizer_2/ (ids, untruncated ids, tokens, truncation), loading through every path,
// named errors for broken files, and inputs that must not fail silently. Load time and throughput are logged.
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileListSource, ModelLoadError, type ModelSource } from '@ssd/tensor';
import { CLIPTokenizer } from '../src/tokenizer.js';
import { fixturesDir } from '../../../testing/index.js';

interface TokenizerCase {
  name: string;
  prompt: string;
  prompt_utf8_hex?: string;
  tokens?: string[];
  tokens_2?: string[];
  untruncated_ids?: number[];
  untruncated_ids_2?: number[];
  num_untruncated_ids?: number;
  truncated?: boolean;
  input_ids?: number[];
  input_ids_2?: number[];
}

interface CasesFile {
  max_length?: number;
  bos_token_id?: number;
  eos_token_id?: number;
  pad_token_id?: number;
  pad_token_id_2?: number;
  cases: TokenizerCase[];
}

const model = join(fixturesDir, 'models/tiny-ssd1b');
const casesFile: CasesFile = JSON.parse(readFileSync(join(fixturesDir, 'tokenizer/cases.json'), 'utf8'));
const maxLength = casesFile.max_length ?? 77;

/**
 * UTF-8 bytes → JS string, keeping what Python's 'surrogatepass' would (ED A0–BF xx → a lone surrogate)
 * so a prompt holding lone surrogates arrives exactly; other invalid bytes become U+FFFD.
 */
function decodeHex(hex: string): string {
  const bytes = Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    const len = b < 0x80 ? 1 : b >= 0xf0 && b < 0xf5 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 0;
    let cp = len === 1 ? b : len === 2 ? b & 0x1f : len === 3 ? b & 0x0f : b & 0x07;
    let ok = len > 0 && i + len <= bytes.length;
    for (let k = 1; ok && k < len; k++) {
      ok = (bytes[i + k] & 0xc0) === 0x80;
      cp = (cp << 6) | (bytes[i + k] & 0x3f);
    }
    if (ok && len > 1 && cp < [0, 0, 0x80, 0x800, 0x10000][len]) ok = false;
    if (!ok || cp > 0x10ffff) {
      out += '\ufffd';
      i += 1;
      continue;
    }
    out += cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
    i += len;
  }
  return out;
}

const promptOf = (c: TokenizerCase) => (c.prompt_utf8_hex !== undefined ? decodeHex(c.prompt_utf8_hex) : c.prompt);

let tok1: CLIPTokenizer;
let tok2: CLIPTokenizer;
const tmp = mkdtempSync(join(tmpdir(), 'ssd-tok-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(async () => {
  let t0 = performance.now();
  tok1 = await CLIPTokenizer.fromPretrained(model, 'tokenizer');
  const loadMs1 = performance.now() - t0;
  t0 = performance.now();
  tok2 = await CLIPTokenizer.fromPretrained(model, 'tokenizer_2');
  const loadMs2 = performance.now() - t0;
  const vocab = readFileSync(join(model, 'tokenizer/vocab.json'), 'utf8');
  const merges = readFileSync(join(model, 'tokenizer/merges.txt'), 'utf8');
  t0 = performance.now();
  CLIPTokenizer.fromFiles({ vocab, merges });
  const parseMs = performance.now() - t0;
  console.log(
    `CLIPTokenizer load: tokenizer ${loadMs1.toFixed(1)} ms, tokenizer_2 ${loadMs2.toFixed(1)} ms (file read + parse); ` +
      `fromFiles parse alone ${parseMs.toFixed(1)} ms (${(vocab.length / 1e6).toFixed(2)} MB vocab, ${tok1.vocabSize} tokens)`,
  );
});

describe('CLIPTokenizer: fixtures/tokenizer/cases.json', () => {
  it('has cases to check', () => {
    expect(casesFile.cases.length).toBeGreaterThan(0);
  });

  it('reads the special ids the fixtures were made with', () => {
    if (casesFile.bos_token_id !== undefined) expect(tok1.bosTokenId).toBe(casesFile.bos_token_id);
    if (casesFile.eos_token_id !== undefined) expect(tok1.eosTokenId).toBe(casesFile.eos_token_id);
    if (casesFile.pad_token_id !== undefined) expect(tok1.padTokenId).toBe(casesFile.pad_token_id);
    if (casesFile.pad_token_id_2 !== undefined) expect(tok2.padTokenId).toBe(casesFile.pad_token_id_2);
    expect(tok1.modelMaxLength).toBe(maxLength);
    expect(tok2.padToken).toBe('!');
  });

  for (const c of casesFile.cases) {
    it(`case ${c.name}`, () => {
      const prompt = promptOf(c);
      const enc1 = tok1.encode(prompt, { maxLength });
      const enc2 = tok2.encode(prompt, { maxLength });
      if (c.tokens) expect(tok1.tokenize(prompt)).toEqual(c.tokens);
      if (c.tokens_2) expect(tok2.tokenize(prompt)).toEqual(c.tokens_2);
      if (c.untruncated_ids) expect(tok1.encodeUntruncated(prompt)).toEqual(c.untruncated_ids);
      if (c.untruncated_ids_2) expect(tok2.encodeUntruncated(prompt)).toEqual(c.untruncated_ids_2);
      if (c.input_ids) expect(enc1.ids).toEqual(c.input_ids);
      if (c.input_ids_2) expect(enc2.ids).toEqual(c.input_ids_2);

      const untruncated = tok1.encodeUntruncated(prompt).length;
      if (c.num_untruncated_ids !== undefined) expect(untruncated).toBe(c.num_untruncated_ids);
      const cut = Math.max(0, untruncated - maxLength);
      expect(enc1.truncatedTokens).toBe(cut);
      if (c.truncated !== undefined) expect(enc1.truncatedTokens > 0).toBe(c.truncated);
      expect(enc2.truncatedTokens).toBe(Math.max(0, tok2.encodeUntruncated(prompt).length - maxLength));

      for (const [tok, enc] of [[tok1, enc1], [tok2, enc2]] as const) {
        const kept = Math.min(tok.encodeUntruncated(prompt).length, maxLength);
        expect(enc.ids).toHaveLength(maxLength);
        expect(enc.attentionMask).toEqual(Array.from({ length: maxLength }, (_, i) => (i < kept ? 1 : 0)));
        expect(enc.ids[0]).toBe(tok.bosTokenId);
        expect(enc.ids[kept - 1]).toBe(tok.eosTokenId);
      }
    });
  }

  it('measures encode throughput', () => {
    const prompts = casesFile.cases.map(promptOf);
    const fresh = CLIPTokenizer.fromFiles({
      vocab: readFileSync(join(model, 'tokenizer/vocab.json'), 'utf8'),
      merges: readFileSync(join(model, 'tokenizer/merges.txt'), 'utf8'),
    });
    let t0 = performance.now();
    for (const p of prompts) fresh.encode(p);
    const coldMs = performance.now() - t0;
    const rounds = 50;
    t0 = performance.now();
    for (let r = 0; r < rounds; r++) for (const p of prompts) fresh.encode(p);
    const warmMs = performance.now() - t0;
    const n = rounds * prompts.length;
    console.log(
      `CLIPTokenizer encode: ${prompts.length} prompts cold (empty BPE cache) ${coldMs.toFixed(1)} ms; ` +
        `warm ${(n / (warmMs / 1000)).toFixed(0)} prompts/s (${((warmMs * 1000) / n).toFixed(1)} µs/prompt)`,
    );
    expect(coldMs).toBeGreaterThan(0);
  });
});

describe('CLIPTokenizer: loading', () => {
  it('reads tokenizer_2 (pad "!" = 0, every "!" split out as an added token)', () => {
    expect(tok2.padTokenId).toBe(0);
    expect(tok1.padTokenId).toBe(49407);
    expect(tok2.tokenize('wow!!')).toEqual(['wow</w>', '!', '!']);
    expect(tok2.encode('wow!!').ids.slice(0, 6)).toEqual([49406, tok1.tokenToId('wow</w>'), 0, 0, 49407, 0]);
    expect(tok1.tokenize('wow!!')).toEqual(['wow</w>', '!!</w>']);
  });

  it('gives the same results from fromFiles, from a FileListSource and from the canonical vocab folder', async () => {
    const dir = join(model, 'tokenizer_2');
    const viaFiles = CLIPTokenizer.fromFiles({
      vocab: readFileSync(join(dir, 'vocab.json'), 'utf8'),
      merges: readFileSync(join(dir, 'merges.txt'), 'utf8'),
      specialTokensMap: readFileSync(join(dir, 'special_tokens_map.json'), 'utf8'),
      tokenizerConfig: readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'),
    });
    const blobs = new Map<string, Blob>();
    for (const name of readdirSync(dir)) blobs.set(`tokenizer_2/${name}`, new Blob([readFileSync(join(dir, name))]));
    const viaBlobs = await CLIPTokenizer.fromPretrained(new FileListSource(blobs), 'tokenizer_2');
    // vocab.json + merges.txt only: CLIPTokenizer's defaults (pad <|endoftext|>)
    const canonical = await CLIPTokenizer.fromPretrained(fixturesDir, 'tokenizer');
    expect(canonical.padTokenId).toBe(49407);
    for (const c of casesFile.cases) {
      const p = promptOf(c);
      expect(viaFiles.encode(p)).toEqual(tok2.encode(p));
      expect(viaBlobs.encode(p)).toEqual(tok2.encode(p));
      expect(canonical.encode(p)).toEqual(tok1.encode(p));
    }
  });

  it('splits out any special token, given as a string or an AddedToken object, even without added_tokens_decoder', () => {
    const vocab = readFileSync(join(model, 'tokenizer/vocab.json'), 'utf8');
    const merges = readFileSync(join(model, 'tokenizer/merges.txt'), 'utf8');
    const padObject = CLIPTokenizer.fromFiles({ vocab, merges, specialTokensMap: JSON.stringify({ pad_token: { content: '!', lstrip: false } }) });
    expect(padObject.padTokenId).toBe(0);
    expect(padObject.encode('wow!!').ids).toEqual(tok2.encode('wow!!').ids);
    const extra = CLIPTokenizer.fromFiles({ vocab, merges, tokenizerConfig: JSON.stringify({ additional_special_tokens: ['cat</w>'], model_max_length: 16 }) });
    expect(extra.modelMaxLength).toBe(16);
    expect(extra.tokenize('a cat</w>dog')).toEqual(['a</w>', 'cat</w>', 'dog</w>']);
    expect(extra.encode('a cat').ids).toHaveLength(16);
  });

  it('names vocab.json when it is not valid JSON', async () => {
    const dir = join(tmp, 'bad-vocab');
    cpSync(join(model, 'tokenizer'), join(dir, 'tokenizer'), { recursive: true });
    writeFileSync(join(dir, 'tokenizer/vocab.json'), '{"a": 1,');
    const err = await CLIPTokenizer.fromPretrained(dir, 'tokenizer').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toContain(join(dir, 'tokenizer/vocab.json'));
    expect((err as Error).message).toMatch(/invalid JSON/);
    expect(() => CLIPTokenizer.fromFiles({ vocab: '[1, 2]', merges: '#version: 0.2\na b' })).toThrow(/vocab\.json: expected a JSON object/);
  });

  it('names merges.txt and the line when a merge is not two symbols', async () => {
    const dir = join(tmp, 'bad-merges');
    cpSync(join(model, 'tokenizer_2'), join(dir, 'tokenizer_2'), { recursive: true });
    const lines = readFileSync(join(dir, 'tokenizer_2/merges.txt'), 'utf8').split('\n');
    lines[10] = 'th e r';
    writeFileSync(join(dir, 'tokenizer_2/merges.txt'), lines.join('\n'));
    const err = await CLIPTokenizer.fromPretrained(dir, 'tokenizer_2').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toContain(join(dir, 'tokenizer_2/merges.txt'));
    expect((err as Error).message).toContain('line 11');
  });

  it('names a missing file', async () => {
    const err = await CLIPTokenizer.fromPretrained(tmp, 'nowhere').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toContain('nowhere/vocab.json');
  });

  it('names vocab.json first even when the merges.txt read fails sooner', async () => {
    const slowSource: ModelSource = {
      description: 'slow://model',
      exists: async () => false,
      readText: (path) => new Promise((_, reject) => setTimeout(() => reject(new ModelLoadError(`file not found: slow://model/${path}`)), path.endsWith('vocab.json') ? 30 : 0)),
      open: () => Promise.reject(new Error('unused')),
    };
    const err = await CLIPTokenizer.fromPretrained(slowSource, 'tokenizer').catch((e: unknown) => e);
    expect((err as Error).message).toBe('file not found: slow://model/tokenizer/vocab.json');
  });
});

describe('CLIPTokenizer: inputs that must not fail silently', () => {
  it('truncates a 10,000-character prompt and reports how many tokens were cut', () => {
    const words = ['red', 'fox', 'jumps', 'over', 'lazy', 'dogs', 'under', 'blue', 'sky'];
    let prompt = '';
    for (let i = 0; prompt.length < 10_000; i++) prompt += `${words[i % words.length]} `;
    prompt = prompt.slice(0, 10_000);
    const full = tok1.encodeUntruncated(prompt);
    const enc = tok1.encode(prompt);
    expect(full.length).toBeGreaterThan(1000);
    expect(enc.ids).toHaveLength(77);
    expect(enc.truncatedTokens).toBe(full.length - 77);
    expect(enc.ids).toEqual([...full.slice(0, 76), 49407]);
    expect(enc.attentionMask.every((m) => m === 1)).toBe(true);
    expect(tok1.decode(full.slice(76, -1))).toMatch(/^(red|fox|jumps|over|lazy|dogs|under|blue|sky) /);
  });

  it('encodes an empty or all-whitespace prompt as BOS, EOS and padding', () => {
    for (const p of ['', '   ', '\t\n\u3000\u200b']) {
      expect(tok1.encode(p).ids).toEqual([49406, ...Array(76).fill(49407)]);
      expect(tok2.encode(p).ids).toEqual([49406, 49407, ...Array(75).fill(0)]);
      expect(tok1.encode(p).attentionMask).toEqual([1, 1, ...Array(75).fill(0)]);
      expect(tok1.encode(p).truncatedTokens).toBe(0);
    }
  });

  it('drops lone surrogates (category Cs) without throwing, deterministically', () => {
    const odd = '\ud800a cat\udfff on \udc00\ud83d a mat\ud83d';
    const first = tok1.encode(odd);
    expect(tok1.encode(odd)).toEqual(first);
    expect(first.ids).toEqual(tok1.encode('a cat on a mat').ids);
    expect(tok2.encode(odd).ids).toEqual(tok2.encode('a cat on a mat').ids);
  });

  it('drops characters assigned after Unicode 14.0, as Python 3.11 treats them as unassigned', () => {
    // U+1FAE8 (shaking face, Unicode 15.0) and U+31350 (CJK Extension H, 15.0)
    expect(tok1.tokenize('a \u{1fae8} b\u{31350}c')).toEqual(tok1.tokenize('a  bc'));
    // U+1FAE7 (bubbles, 14.0) is kept
    expect(tok1.tokenize('a \u{1fae7}').length).toBeGreaterThan(1);
  });

  it('keeps uppercase special-token text intact and treats the pattern as transformers does', () => {
    expect(tok1.encodeUntruncated('<|ENDOFTEXT|>')).toEqual([49406, 49407, 49407]);
    expect(tok2.encodeUntruncated('a!<|endoftext|>!')).toEqual([49406, 320, 0, 49407, 0, 49407]);
  });

  it('rejects bad options with a named error', () => {
    expect(() => tok1.encode('a cat', { maxLength: 1 })).toThrow(/maxLength/);
    expect(() => tok1.encode('a cat', { maxLength: 2 })).toThrow(/no room/);
    expect(tok1.encode('a cat', { padding: 'do_not_pad' }).ids).toEqual([49406, 320, 2368, 49407]);
    expect(tok1.encode('a b c d', { maxLength: 4 })).toMatchObject({ ids: [49406, 320, tok1.tokenToId('b</w>'), 49407], truncatedTokens: 2 });
    expect(() => tok1.encode(42 as unknown as string)).toThrow(/must be a string/);
  });
});
