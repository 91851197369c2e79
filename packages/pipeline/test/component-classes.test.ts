// model_index.json classes checked against what the pipeline loads (issue 20 item 11).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, FolderSource, readModelIndex } from '@ssd/tensor';
import { checkComponentClasses } from '../src/component-classes.js';
import { fixturesDir } from '../../../testing/index.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
const tmp = mkdtempSync(join(tmpdir(), 'ssd-classes-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function indexWith(name: string, change: Record<string, unknown>) {
  const dir = join(tmp, name);
  cpSync(join(model, 'model_index.json'), join(dir, 'model_index.json'));
  const raw = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
  writeFileSync(join(dir, 'model_index.json'), JSON.stringify({ ...raw, ...change }));
  return readModelIndex(new FolderSource(dir));
}

describe('checkComponentClasses', () => {
  it('accepts the SDXL folder, a tiny VAE, a fast tokenizer and absent components', async () => {
    checkComponentClasses(await readModelIndex(new FolderSource(model)));
    checkComponentClasses(await indexWith('ok', { vae: ['diffusers', 'AutoencoderTiny'], tokenizer_2: ['transformers', 'CLIPTokenizerFast'], text_encoder: [null, null] }));
  });

  for (const [component, entry, message] of [
    ['unet', ['diffusers', 'UNet2DModel'], /config key "unet" = \["diffusers","UNet2DModel"\]: this pipeline loads unet as UNet2DConditionModel, not UNet2DModel/],
    ['text_encoder', ['transformers', 'T5EncoderModel'], /loads text_encoder as CLIPTextModel, not T5EncoderModel/],
    ['text_encoder_2', ['transformers', 'CLIPTextModel'], /loads text_encoder_2 as CLIPTextModelWithProjection, not CLIPTextModel/],
    ['vae', ['diffusers', 'VQModel'], /loads vae as AutoencoderKL or AutoencoderTiny, not VQModel/],
  ] as const) {
    it(`${component} as ${entry[1]} is a ConfigError naming model_index.json and the component`, async () => {
      const index = await indexWith(component, { [component]: entry });
      let err: unknown;
      try {
        checkComponentClasses(index, 'm/model_index.json');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).key).toBe(component);
      expect((err as Error).message).toMatch(/^m\/model_index\.json: /);
      expect((err as Error).message).toMatch(message);
    });
  }
});
