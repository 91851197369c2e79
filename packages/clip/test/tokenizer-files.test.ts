// Damaged tokenizer files are refused the way transformers refuses them, naming the file and the first
// bad byte or line, instead of loading into a silently different tokenizer: invalid UTF-8 (Python's
// UnicodeDecodeError), a merge whose tokens vocab.json lacks, a merges.txt cut short at a line break.
// Each case damages a copy of the tiny model's tokenizer in a temp folder.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelLoadError } from '@ssd/tensor';
import { CLIPTokenizer } from '../src/tokenizer.js';
import { invalidUtf8Offset } from '../src/tokenizer-file-text.js';
import { fixturesDir } from '../../../testing/index.js';

const source = join(fixturesDir, 'models/tiny-ssd1b/tokenizer');
const tmp = mkdtempSync(join(tmpdir(), 'ssd-tokfiles-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of the tokenizer folder as `<tmp>/<name>/tokenizer`, with `edit` applied to one file's bytes. */
function damaged(name: string, file: 'merges.txt' | 'vocab.json', edit: (bytes: Buffer) => Buffer): string {
  const dir = join(tmp, name);
  cpSync(source, join(dir, 'tokenizer'), { recursive: true });
  const path = join(dir, 'tokenizer', file);
  writeFileSync(path, edit(readFileSync(path)));
  return dir;
}

async function loadError(dir: string): Promise<Error> {
  const err = await CLIPTokenizer.fromPretrained(dir, 'tokenizer').then(
    () => new Error('loaded without an error'),
    (e: Error) => e,
  );
  expect(err).toBeInstanceOf(ModelLoadError);
  return err;
}

const mergeLines = (): string[] => readFileSync(join(source, 'merges.txt'), 'utf8').split('\n');

describe('tokenizer files: UTF-8', () => {
  it('refuses a merges.txt with invalid bytes, naming the file, the byte offset and the line', async () => {
    let offset = -1;
    const dir = damaged('bad-utf8-merges', 'merges.txt', (b) => {
      // line 6 ("a r" in CLIP's file) becomes FF FE 20 41: once decoded leniently, a "merge" of U+FFFD U+FFFD and "A"
      offset = Buffer.from(mergeLines().slice(0, 5).join('\n') + '\n').length;
      return Buffer.concat([b.subarray(0, offset), Buffer.from([0xff, 0xfe, 0x20, 0x41]), b.subarray(offset + 3)]);
    });
    const err = await loadError(dir);
    expect(err.message).toContain(join(dir, 'tokenizer/merges.txt'));
    expect(err.message).toContain(`not valid UTF-8 at byte ${offset} (line 6: ff fe 20 41)`);
  });

  it('refuses a vocab.json with a truncated multi-byte sequence', async () => {
    let offset = -1;
    let line = 1;
    const dir = damaged('bad-utf8-vocab', 'vocab.json', (b) => {
      // "é" (C3 A9) in a token cut to its lead byte
      offset = b.indexOf(Buffer.from('"\u00e9</w>"')) + 1;
      expect(offset).toBeGreaterThan(0);
      for (let i = 0; i < offset; i++) if (b[i] === 0x0a) line++;
      return Buffer.concat([b.subarray(0, offset + 1), b.subarray(offset + 2)]);
    });
    const err = await loadError(dir);
    expect(err.message).toContain(join(dir, 'tokenizer/vocab.json'));
    expect(err.message).toContain(`not valid UTF-8 at byte ${offset} (line ${line}: c3 3c 2f 77)`);
  });

  it('accepts a file that really holds U+FFFD (valid UTF-8)', async () => {
    const dir = damaged('real-fffd', 'merges.txt', (b) => Buffer.from(b.toString('utf8').replace('#version: 0.2', '#version: 0.2 \ufffd')));
    const tok = await CLIPTokenizer.fromPretrained(dir, 'tokenizer');
    const ref = await CLIPTokenizer.fromPretrained(join(fixturesDir, 'models/tiny-ssd1b'), 'tokenizer');
    expect(tok.encode('a red cat').ids).toEqual(ref.encode('a red cat').ids);
  });

  it('finds the first invalid sequence exactly where the WHATWG fatal decoder fails', () => {
    const cases: [number[], number][] = [
      [[0x61, 0xf0, 0x9f, 0x98, 0x80, 0x62], -1], // a 😀 b
      [[0x61, 0x80], 1], // stray continuation byte
      [[0xc0, 0x80], 0], // overlong NUL
      [[0xc1, 0xbf], 0], // overlong
      [[0x61, 0xe0, 0x80, 0x80], 1], // overlong 3-byte
      [[0xed, 0xa0, 0x80], 0], // UTF-16 surrogate D800
      [[0xed, 0x9f, 0xbf], -1], // U+D7FF
      [[0xf0, 0x8f, 0xbf, 0xbf], 0], // overlong 4-byte
      [[0xf4, 0x8f, 0xbf, 0xbf], -1], // U+10FFFF
      [[0xf4, 0x90, 0x80, 0x80], 0], // above U+10FFFF
      [[0xf5, 0x80, 0x80, 0x80], 0],
      [[0x62, 0x63, 0xe2, 0x82], 2], // cut short at the end
      [[0xe2, 0x82, 0x41], 0], // cut short before ASCII
      [[0xef, 0xbb, 0xbf, 0x7b], -1], // byte-order mark
    ];
    for (const [bytes, want] of cases) {
      const u8 = Uint8Array.from(bytes);
      expect(invalidUtf8Offset(u8), bytes.map((b) => b.toString(16)).join(' ')).toBe(want);
      let fatal = true;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(u8);
      } catch {
        fatal = false;
      }
      expect(fatal).toBe(want === -1);
    }
  });
});

describe('tokenizer files: merges.txt against vocab.json', () => {
  it('refuses a merge whose token vocab.json lacks, naming the line', async () => {
    const dir = damaged('merge-not-in-vocab', 'merges.txt', () => {
      const lines = mergeLines();
      lines[10] = 'x z'; // both symbols exist, "xz" does not
      return Buffer.from(lines.join('\n'));
    });
    const err = await loadError(dir);
    expect(err.message).toContain(join(dir, 'tokenizer/merges.txt'));
    expect(err.message).toContain('line 11 ("x z") needs the token "xz", which vocab.json does not hold');
  });

  it('refuses a merge of a symbol vocab.json lacks (fromFiles too)', () => {
    const lines = mergeLines();
    lines[3] = 'qq\u0101 n';
    const vocab = readFileSync(join(source, 'vocab.json'), 'utf8');
    expect(() => CLIPTokenizer.fromFiles({ vocab, merges: lines.join('\n'), origin: 'here' })).toThrow(
      /^here\/merges\.txt: line 4 \("qq\u0101 n"\) needs the token "qq\u0101"/,
    );
  });

  it('refuses a merges.txt cut short at a line break, naming where it ends', async () => {
    const dir = damaged('merges-cut', 'merges.txt', () => Buffer.from(mergeLines().slice(0, 40_001).join('\n') + '\n'));
    const err = await loadError(dir);
    expect(err.message).toContain(join(dir, 'tokenizer/merges.txt'));
    expect(err.message).toContain('40,000 merges for the 49,408 tokens of vocab.json, which a CLIP tokenizer builds from 48,894');
    expect(err.message).toContain('the file ends at line 40001, cut short');
  });

  it('accepts a few extra tokens in vocab.json and the last merges missing within 1%', async () => {
    const vocab = JSON.parse(readFileSync(join(source, 'vocab.json'), 'utf8')) as Record<string, number>;
    vocab['<|extra|>'] = 49408;
    const merges = mergeLines().slice(0, 48_895 - 100).join('\n');
    const tok = CLIPTokenizer.fromFiles({ vocab: JSON.stringify(vocab), merges });
    expect(tok.vocabSize).toBe(49_409);
    expect(tok.encode('a red cat').ids.slice(0, 5)).toEqual([49406, 320, 736, 2368, 49407]);
  });
});
