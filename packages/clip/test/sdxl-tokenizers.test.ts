// SDXL's tokenizers as shipped with @ssd/clip: the real vocab.json / merges.txt, SDXL's two configs
// (tokenizer_2 pads with "!"), and the same ids as the tokenizer folders on every fixture prompt.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLIPTokenizer, loadSdxlTokenizer, readBundledTokenizerFile, sdxlTokenizerSource, SDXL_TOKENIZER_CONFIGS } from '@ssd/clip';
import { ModelLoadError } from '@ssd/tensor';
import { fixturesDir, repoRoot } from '../../../testing/index.js';

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
const cases = (JSON.parse(readFileSync(join(fixturesDir, 'tokenizer/cases.json'), 'utf8')) as { cases: { name: string; prompt: string; input_ids?: number[]; input_ids_2?: number[] }[] }).cases;

describe("SDXL's tokenizers shipped with @ssd/clip", () => {
  it('ships the real CLIP vocabulary and merges (the SDXL repository files)', async () => {
    expect(sha256(await readBundledTokenizerFile('vocab.json'))).toBe('e089ad92ba36837a0d31433e555c8f45fe601ab5c221d4f607ded32d9f7a4349');
    expect(sha256(await readBundledTokenizerFile('merges.txt'))).toBe('9fd691f7c8039210e0fced15865466c65820d09b63988b0174bfe25de299051a');
  });

  it("mirrors SDXL's two tokenizer configs", () => {
    for (const name of ['tokenizer', 'tokenizer_2'] as const) {
      const dir = join(repoRoot, 'bench/models/configs/common', name);
      expect(SDXL_TOKENIZER_CONFIGS[name].tokenizerConfig).toEqual(JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')));
      expect(SDXL_TOKENIZER_CONFIGS[name].specialTokensMap).toEqual(JSON.parse(readFileSync(join(dir, 'special_tokens_map.json'), 'utf8')));
    }
  });

  it("gives transformers' ids on every fixture prompt, tokenizer_2 padding with \"!\"", async () => {
    const [t1, t2] = [await loadSdxlTokenizer('tokenizer'), await loadSdxlTokenizer('tokenizer_2')];
    expect([t1.padTokenId, t2.padTokenId, t2.padToken]).toEqual([49407, 0, '!']);
    let checked = 0;
    for (const c of cases) {
      if (c.input_ids) expect(t1.encode(c.prompt).ids, c.name).toEqual(c.input_ids);
      if (c.input_ids_2) expect(t2.encode(c.prompt).ids, c.name).toEqual(c.input_ids_2);
      checked++;
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('serves both folders as a ModelSource (the layer completing a single-file checkpoint)', async () => {
    const src = sdxlTokenizerSource();
    const t2 = await CLIPTokenizer.fromPretrained(src, 'tokenizer_2');
    expect(t2.encode('a cat!').ids.slice(0, 6)).toEqual((await loadSdxlTokenizer('tokenizer_2')).encode('a cat!').ids.slice(0, 6));
    expect(await src.exists('tokenizer/merges.txt')).toBe(true);
    expect(await src.exists('unet/config.json')).toBe(false);
    await expect(src.readText('tokenizer/added_tokens.json')).rejects.toThrow(ModelLoadError);
  });

  it('is listed in the package files', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'packages/clip/package.json'), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('tokenizer');
  });
});
