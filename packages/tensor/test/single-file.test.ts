// The fixture SGM checkpoint (diffusers' own convert_diffusers_to_original_sdxl.py output of the tiny
// SSD-1B folder, --half) read as a diffusers folder: every component's tensors are bit-identical to
// the folder's fp16 variant after the name mapping, and the inferred configs equal the folder's.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderSource, openComponentTensors, readEntryBytes, SingleFileSource, type TensorSource } from '@ssd/tensor';
import { fixturesDir, hasFixtures } from '../../../testing/index.js';

const FILE = 'models/single-file/tiny-ssd1b-sgm.fp16.safetensors';
const FOLDER = 'models/tiny-ssd1b';

describe.skipIf(!hasFixtures(FILE, `${FOLDER}/unet/diffusion_pytorch_model.fp16.safetensors`))('single-file SGM checkpoint (fixture)', () => {
  let sf: SingleFileSource;
  const folder = new FolderSource(`${fixturesDir}/${FOLDER}`);
  beforeAll(async () => {
    sf = await SingleFileSource.open(`${fixturesDir}/${FILE}`);
  });
  afterAll(() => sf?.close());

  it('holds all four components', () => {
    expect(sf.kind.layout).toBe('sgm');
    expect([...sf.components].sort()).toEqual(['text_encoder', 'text_encoder_2', 'unet', 'vae']);
    expect(sf.kind.ignored).toEqual([]);
  });

  for (const c of ['unet', 'vae', 'text_encoder', 'text_encoder_2']) {
    it(`${c}: the same keys, shapes, dtypes and bytes as the folder's fp16 variant`, async () => {
      const mine: TensorSource = await sf.openTensors(c);
      const ref = await openComponentTensors(folder, c, { variant: 'fp16' });
      try {
        expect(mine.keys().sort()).toEqual(ref.keys().sort());
        for (const k of ref.keys()) {
          const [a, b] = [mine.get(k)!, ref.get(k)!];
          expect([a.dtype, ...a.shape], k).toEqual([b.dtype, ...b.shape]);
          expect(Buffer.from(await readEntryBytes(a)).equals(Buffer.from(await readEntryBytes(b))), k).toBe(true);
        }
      } finally {
        await mine.close();
        await ref.close();
      }
    });
  }

  it('infers the UNet and VAE configs field for field', () => {
    for (const c of ['unet', 'vae'] as const) {
      const want = JSON.parse(readFileSync(`${fixturesDir}/${FOLDER}/${c}/config.json`, 'utf8'));
      expect(sf.config(c)).toEqual(want);
    }
  });

  it("infers the text encoders' configs (every field but the writer's versions)", () => {
    for (const c of ['text_encoder', 'text_encoder_2'] as const) {
      const want = JSON.parse(readFileSync(`${fixturesDir}/${FOLDER}/${c}/config.json`, 'utf8'));
      const got = sf.config(c);
      for (const k of ['torch_dtype', 'transformers_version']) {
        delete want[k];
        delete got[k];
      }
      expect(got).toEqual(want);
    }
  });

  it("serves SDXL's scheduler and a model_index listing every component", async () => {
    const want = JSON.parse(readFileSync(`${fixturesDir}/${FOLDER}/scheduler/scheduler_config.json`, 'utf8'));
    expect(sf.config('scheduler')).toEqual(want);
    const index = JSON.parse(await sf.readText('model_index.json'));
    const ref = JSON.parse(readFileSync(`${fixturesDir}/${FOLDER}/model_index.json`, 'utf8'));
    expect(index).toEqual(ref);
  });
});
