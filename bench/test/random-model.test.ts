// make-random-model's data: the UNet key generator reproduces the reference key lists exactly (names,
// shapes, order) and SDXL base's published parameter count; every component's list has the published
// count; the streamed writer produces a safetensors file that reads back as the synthetic source.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { SyntheticSafetensorsSource } from '@ssd/tensor/testing';
import { ARCHS, EXPECTED_PARAMS, componentKeys, parameterCount, readKeyList, readUNetConfig, staticFiles, streamToFile, unetKeys } from '../lib/random-model.js';

describe('random-model key lists', () => {
  for (const [arch, file] of [['ssd-1b', 'unet_keys_ssd1b.txt'], ['vega', 'unet_keys_vega.txt']] as const) {
    it(`unetKeys(${arch} config) equals ${file}`, async () => {
      const gen = unetKeys(await readUNetConfig(arch));
      const ref = await readKeyList(file);
      expect(gen.map((k) => `${k.key} [${k.shape.join(', ')}]`)).toEqual(ref.map((k) => `${k.key} [${k.shape.join(', ')}]`));
    });
  }
  it('unetKeys(sdxl config): 1680 tensors, 2,567,463,684 parameters', async () => {
    const keys = unetKeys(await readUNetConfig('sdxl'));
    expect(keys.length).toBe(1680);
    expect(parameterCount(keys)).toBe(EXPECTED_PARAMS['sdxl/unet']);
  });
  it('every component of every arch has the published parameter count', async () => {
    for (const arch of ARCHS) {
      expect(parameterCount(await componentKeys(arch, 'unet'))).toBe(EXPECTED_PARAMS[`${arch}/unet`]);
      for (const c of ['text_encoder', 'text_encoder_2', 'vae'] as const) expect(parameterCount(await componentKeys(arch, c))).toBe(EXPECTED_PARAMS[c]);
    }
  });
  it('the static files exist and the configs parse', async () => {
    for (const arch of ARCHS) {
      for (const [rel, from] of Object.entries(staticFiles(arch))) {
        const text = await readFile(from, 'utf8');
        if (rel.endsWith('.json')) expect(() => JSON.parse(text), rel).not.toThrow();
      }
    }
  });
});

describe('streamToFile', () => {
  it('writes the synthetic file in chunks; it reads back equal', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ssd-random-model-'));
    try {
      const keys = [{ key: 'a.weight', shape: [37, 11] }, { key: 'a.bias', shape: [37] }, { key: 'norm.weight', shape: [5] }];
      const src = new SyntheticSafetensorsSource('t.safetensors', keys, 'F16', 3);
      const path = join(dir, 'sub', 't.fp16.safetensors');
      const bytes = await streamToFile(src, path, { chunkBytes: 100 }); // chunks that split elements and the header
      const file = await readFile(path);
      expect(file.length).toBe(bytes);
      expect(new Uint8Array(file)).toEqual(await src.read(0, bytes));
      const st = await SafetensorsFile.open(new NodeFileSource(path));
      expect([...st.tensors.keys()]).toEqual(keys.map((k) => k.key));
      await st.source.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
