// Synthetic weights: a valid safetensors file from a key list, identical bytes however it is read,
// well-scaled values, and the real key lists' parameter counts.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MemorySource, readEntryFloat32, SafetensorsFile, WeightStore } from '@ssd/tensor';
import { parseKeyList, SyntheticSafetensorsSource } from '@ssd/tensor/testing';
import { testContext } from '../../../testing/index.js';

const refDir = (() => {
  const shared = fileURLToPath(new URL('../../../../shared/reference', import.meta.url));
  try {
    readFileSync(`${shared}/unet_keys_vega.txt`);
    return shared;
  } catch {
    return null;
  }
})();

describe('synthetic safetensors', () => {
  const keys = [
    { key: 'a.weight', shape: [33, 7] },
    { key: 'a.bias', shape: [33] },
    { key: 'norm.weight', shape: [5] },
    { key: 'emb.token_embedding.weight', shape: [100, 3] },
  ];

  it('parses, and any byte range reads the same as the whole', async () => {
    for (const dtype of ['F16', 'F32'] as const) {
      const src = new SyntheticSafetensorsSource('syn', keys, dtype, 7);
      const st = await SafetensorsFile.open(src);
      expect(st.keys()).toEqual(keys.map((k) => k.key));
      const whole = await src.read(0, await src.size());
      for (const [o, n] of [[0, 5], [3, 100], [src.header.length - 3, 40], [500, 301]]) {
        expect(await src.read(o, n)).toEqual(whole.subarray(o, o + n));
      }
      const w = await st.readFloat32('a.weight');
      const bound = 1 / Math.sqrt(7) + 1e-3;
      expect(w.every((v) => Math.abs(v) <= bound)).toBe(true);
      expect(new Set(w).size).toBeGreaterThan(200);
      const nw = await st.readFloat32('norm.weight');
      expect(nw.every((v) => v > 0.85 && v < 1.15)).toBe(true);
    }
  });

  it('loads through a WeightStore from a MemorySource', async () => {
    const ctx = await testContext();
    const src = new MemorySource({ 'm/model.safetensors': new SyntheticSafetensorsSource('syn', keys, 'F32') });
    const store = await WeightStore.open(ctx, src, 'm', { dtype: 'f32' });
    const t = store.take('a.bias', [33]);
    store.take('a.weight', [33, 7]);
    store.take('norm.weight', [5]);
    store.take('emb.token_embedding.weight', [100, 3]);
    store.finish();
    await store.load();
    expect([...(await t.read())]).toEqual([...(await readEntryFloat32(store.info('a.bias')!))]);
    store.disposeAll();
  });

  it.skipIf(!refDir)('the reference key lists have the documented parameter counts', () => {
    const count = (f: string) => new SyntheticSafetensorsSource(f, parseKeyList(readFileSync(`${refDir}/${f}`, 'utf8'))).parameterCount;
    expect(count('unet_keys_ssd1b.txt')).toBe(1_331_334_404);
    expect(count('unet_keys_vega.txt')).toBe(745_225_604);
    expect(count('vae_keys_sdxl.txt')).toBe(83_653_863);
    expect(count('text_encoder_keys_clip_l.txt')).toBe(123_060_480);
    expect(count('text_encoder_2_keys_clip_bigg.txt')).toBe(694_659_840);
  });
});
