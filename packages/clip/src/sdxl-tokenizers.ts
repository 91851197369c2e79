// SDXL's two CLIP tokenizers, shipped with this package because single-file checkpoints carry none:
// the real vocab.json and merges.txt (tokenizer/, shared by both) and SDXL's two configs, which differ
// in the pad token: `<|endoftext|>` (49407) for `tokenizer`, `"!"` (0) for `tokenizer_2`. The files are
// found with `new URL(…, import.meta.url)`: read from disk in Node and Deno, fetched in browsers,
// where bundlers (Vite, webpack 5, Rollup's URL plugin) emit them as assets.

import { LayeredModelSource, ModelLoadError, type ByteSource, type ModelSource } from '@ssd/tensor';
import { CLIPTokenizer } from './tokenizer.js';

export type SdxlTokenizerName = 'tokenizer' | 'tokenizer_2';

const ASSETS: Record<'vocab.json' | 'merges.txt', URL> = {
  'vocab.json': new URL('../tokenizer/vocab.json', import.meta.url),
  'merges.txt': new URL('../tokenizer/merges.txt', import.meta.url),
};

const SPECIAL = (pad: string) => ({
  bos_token: { content: '<|startoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false },
  eos_token: { content: '<|endoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false },
  pad_token: pad,
  unk_token: { content: '<|endoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false },
});

const ADDED = (id: string, content: string, normalized: boolean) => ({ [id]: { content, lstrip: false, normalized, rstrip: false, single_word: false, special: true } });

const CONFIG = (pad: string, added: Record<string, unknown>) => ({
  added_tokens_decoder: { ...added, ...ADDED('49406', '<|startoftext|>', true), ...ADDED('49407', '<|endoftext|>', true) },
  bos_token: '<|startoftext|>',
  clean_up_tokenization_spaces: true,
  do_lower_case: true,
  eos_token: '<|endoftext|>',
  errors: 'replace',
  model_max_length: 77,
  pad_token: pad,
  tokenizer_class: 'CLIPTokenizer',
  unk_token: '<|endoftext|>',
});

/** SDXL's special_tokens_map.json and tokenizer_config.json of each tokenizer folder. */
export const SDXL_TOKENIZER_CONFIGS: Readonly<Record<SdxlTokenizerName, { specialTokensMap: object; tokenizerConfig: object }>> = {
  tokenizer: { specialTokensMap: SPECIAL('<|endoftext|>'), tokenizerConfig: CONFIG('<|endoftext|>', {}) },
  tokenizer_2: { specialTokensMap: SPECIAL('!'), tokenizerConfig: CONFIG('!', ADDED('0', '!', false)) },
};

const texts = new Map<string, Promise<string>>();

/** vocab.json or merges.txt as shipped (read once per process). */
export function readBundledTokenizerFile(name: 'vocab.json' | 'merges.txt'): Promise<string> {
  let t = texts.get(name);
  if (!t) {
    t = readAsset(ASSETS[name]);
    texts.set(name, t);
    t.catch(() => texts.delete(name));
  }
  return t;
}

async function readAsset(url: URL): Promise<string> {
  if (url.protocol === 'file:') {
    const fsName = 'node:fs/promises'; // Node, Deno, Bun
    const fs = (await import(/* @vite-ignore */ fsName)) as { readFile(u: URL, enc: 'utf8'): Promise<string> };
    try {
      return await fs.readFile(url, 'utf8');
    } catch (e) {
      throw new ModelLoadError(`@ssd/clip's tokenizer file ${url.pathname} cannot be read (${(e as Error).message}): is the package installed whole?`, { cause: e });
    }
  }
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new ModelLoadError(`@ssd/clip's tokenizer file ${url.href}: request failed (${(e as Error).message})`, { cause: e });
  }
  if (!res.ok) throw new ModelLoadError(`@ssd/clip's tokenizer file ${url.href}: HTTP ${res.status} (does the bundler emit new URL(…, import.meta.url) assets?)`);
  return res.text();
}

/** SDXL's `tokenizer` or `tokenizer_2`, from the files shipped with this package. */
export async function loadSdxlTokenizer(name: SdxlTokenizerName): Promise<CLIPTokenizer> {
  const c = SDXL_TOKENIZER_CONFIGS[name];
  if (!c) throw new ModelLoadError(`no bundled tokenizer "${name}" (there are tokenizer and tokenizer_2)`);
  const [vocab, merges] = await Promise.all([readBundledTokenizerFile('vocab.json'), readBundledTokenizerFile('merges.txt')]);
  return CLIPTokenizer.fromFiles({
    vocab, merges, specialTokensMap: JSON.stringify(c.specialTokensMap), tokenizerConfig: JSON.stringify(c.tokenizerConfig), origin: `@ssd/clip (SDXL ${name})`,
  });
}

/**
 * The two tokenizer folders as a ModelSource (`tokenizer/vocab.json`, `tokenizer_2/tokenizer_config.json`,
 * …): the layer that completes a single-file checkpoint into a pipeline folder.
 */
export function sdxlTokenizerSource(): ModelSource {
  const text = async (path: string): Promise<string | undefined> => {
    const [dir, file] = path.split('/');
    const c = SDXL_TOKENIZER_CONFIGS[dir as SdxlTokenizerName];
    if (!c || path.split('/').length !== 2) return undefined;
    if (file === 'vocab.json' || file === 'merges.txt') return readBundledTokenizerFile(file);
    if (file === 'special_tokens_map.json') return JSON.stringify(c.specialTokensMap, null, 2);
    if (file === 'tokenizer_config.json') return JSON.stringify(c.tokenizerConfig, null, 2);
    return undefined;
  };
  const known = (path: string) => /^tokenizer(_2)?\/(vocab\.json|merges\.txt|special_tokens_map\.json|tokenizer_config\.json)$/.test(path);
  return {
    description: '@ssd/clip SDXL tokenizers',
    exists: async (path) => known(path),
    async readText(path) {
      const t = known(path) ? await text(path) : undefined;
      if (t === undefined) throw new ModelLoadError(`file not found: ${path} among @ssd/clip's SDXL tokenizer files`);
      return t;
    },
    async open(path): Promise<ByteSource> {
      throw new ModelLoadError(`file not found: ${path} among @ssd/clip's SDXL tokenizer files (they hold no weights)`);
    },
  };
}

/**
 * `source` with SDXL's tokenizer folders wherever it has none: a single-file checkpoint
 * (SingleFileSource) becomes a complete pipeline folder for StableDiffusionXLPipeline.fromPretrained.
 */
export function withSdxlTokenizers(source: ModelSource): LayeredModelSource {
  return new LayeredModelSource([source, sdxlTokenizerSource()]);
}
