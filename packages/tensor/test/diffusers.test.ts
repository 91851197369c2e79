// Diffusers folders through every ModelSource: model_index.json, configs, variant choice with
// fallback, clear errors for missing files, and WeightStore validation.
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CheckpointError, readEntryFloat32, FileListSource, FolderSource, ModelLoadError, openModelSource, permute, readComponentConfig, readModelIndex,
  resolveWeightFiles, UrlSource, WeightStore, type ModelSource,
} from '@ssd/tensor';
import { fixturesDir, testContext } from '../../../testing/index.js';
import { serveFolder } from '../../../testing/http-server.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
const tmp = mkdtempSync(join(tmpdir(), 'ssd-df-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function filesOf(dir: string, prefix = ''): Map<string, Blob> {
  const m = new Map<string, Blob>();
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + e.name;
    if (e.isDirectory()) for (const [k, v] of filesOf(join(dir, e.name), rel + '/')) m.set(k, v);
    else m.set(rel, new Blob([readFileSync(join(dir, e.name))]));
  }
  return m;
}

async function checkSource(src: ModelSource) {
  const index = await readModelIndex(src);
  expect(index.className).toBe('StableDiffusionXLPipeline');
  expect(Object.keys(index.components).sort()).toEqual(['scheduler', 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'unet', 'vae']);
  expect(index.components.unet).toEqual(['diffusers', 'UNet2DConditionModel']);
  expect(index.extra.force_zeros_for_empty_prompt).toBe(true);
  const unetCfg = await readComponentConfig(src, 'unet');
  expect(unetCfg._class_name).toBe('UNet2DConditionModel');
  expect((await readComponentConfig(src, 'scheduler'))._class_name).toBe('EulerDiscreteScheduler');
  expect((await resolveWeightFiles(src, 'unet', 'fp16')).paths).toEqual(['unet/diffusion_pytorch_model.fp16.safetensors']);
  expect((await resolveWeightFiles(src, 'text_encoder')).paths).toEqual(['text_encoder/model.safetensors']);
}

describe('diffusers folders', () => {
  it('reads a local folder', async () => checkSource(new FolderSource(model)));
  it('reads a set of Files (browser folder picker)', async () => checkSource(new FileListSource(filesOf(model))));
  it('reads a URL base over HTTP', async () => {
    const server = await serveFolder(fixturesDir);
    try {
      await checkSource(openModelSource(`${server.url}/models/tiny-ssd1b`));
      server.misbehave.set('model_index.json', 'status-500');
      await expect(readModelIndex(new UrlSource(`${server.url}/models/tiny-ssd1b`))).rejects.toBeInstanceOf(ModelLoadError);
    } finally {
      await server.close();
    }
  });

  it('tolerates [null, null] components and reports a missing model_index.json', async () => {
    const dir = join(tmp, 'nulls');
    cpSync(model, dir, { recursive: true });
    const idx = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
    idx.image_encoder = [null, null];
    idx.feature_extractor = [null, null];
    writeFileSync(join(dir, 'model_index.json'), JSON.stringify(idx));
    const index = await readModelIndex(new FolderSource(dir));
    expect(index.components.image_encoder).toBeUndefined();
    await expect(readModelIndex(new FolderSource(tmp))).rejects.toThrow(/model_index\.json was not found/);
  });

  it('falls back from a missing variant with a notice, and lists what it looked for when nothing is there', async () => {
    const src = new FolderSource(join(fixturesDir, 'models'));
    const r = await resolveWeightFiles(src, 'tiny-sdxl-unet', 'bf16');
    expect(r.paths).toEqual(['tiny-sdxl-unet/diffusion_pytorch_model.safetensors']);
    expect(r.notice).toMatch(/no "bf16" variant/);
    const e = await resolveWeightFiles(src, 'nothing-here', 'fp16').catch((x) => x);
    expect(e).toBeInstanceOf(ModelLoadError);
    expect(e.message).toMatch(/nothing-here\/diffusion_pytorch_model\.fp16\.safetensors/);
    expect(e.message).toMatch(/nothing-here\/model\.safetensors/);
  });
});

describe('WeightStore', () => {
  it('loads what the model asks for, and lists every missing, mis-shaped and unexpected key at once', async () => {
    const ctx = await testContext();
    const src = new FolderSource(model);
    const store = await WeightStore.open(ctx, src, 'text_encoder', { dtype: 'f32' });
    const key = 'text_model.final_layer_norm.weight';
    const shape = [...store.info(key)!.shape];
    const w = store.take(key, shape);
    store.take('text_model.does_not_exist.weight', [3]);
    store.take('text_model.embeddings.token_embedding.weight', [7, 7]);
    let err: unknown;
    try {
      store.finish();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CheckpointError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/missing: text_model\.does_not_exist\.weight \(expected shape \[3\]\)/);
    expect(msg).toMatch(/shape mismatch: text_model\.embeddings\.token_embedding\.weight: expected \[7, 7\], found \[49408, 16\]/);
    expect(msg).toMatch(/unexpected: text_model\.encoder\.layers\.0/);
    expect(msg).toContain('model.safetensors');
    await store.load();
    expect([...(await w.read())]).toEqual([...(await readEntryFloat32(store.info(key)!))]);
    store.disposeAll();
    await store.close();
  });

  it('applies host-side transforms and dtype conversion', async () => {
    const ctx = await testContext();
    const store = await WeightStore.open(ctx, new FolderSource(model), 'unet', { dtype: ctx.f16 ? 'f16' : 'f32', variant: 'fp16' });
    const key = 'conv_in.weight';
    const s = [...store.info(key)!.shape]; // [O, I, 3, 3]
    const t = store.take(key, [s[2], s[3], s[1], s[0]], { transform: (d, fs) => permute(d, fs, [2, 3, 1, 0]), fileShape: s });
    await store.load();
    const raw = await readEntryFloat32(store.info(key)!);
    const want = permute(raw, s, [2, 3, 1, 0]);
    expect([...(await t.read())]).toEqual([...want]);
    store.disposeAll();
    await store.close();
  });

  it('stacks several parameters into one tensor (fused projections)', async () => {
    const ctx = await testContext();
    const store = await WeightStore.open(ctx, new FolderSource(model), 'text_encoder', { dtype: 'f32' });
    const p = 'text_model.encoder.layers.0.self_attn.';
    const keys = ['q_proj.weight', 'k_proj.weight', 'v_proj.weight'].map((k) => p + k);
    const shapes = keys.map((k) => [...store.info(k)!.shape]);
    const qkv = store.takeStacked(keys, shapes);
    expect(qkv.shape).toEqual([shapes[0][0] * 3, shapes[0][1]]);
    await store.load();
    const want = (await Promise.all(keys.map((k) => readEntryFloat32(store.info(k)!)))).flatMap((a) => [...a]);
    expect([...(await qkv.read())]).toEqual(want);
    store.disposeAll();
    await store.close();
  });

  it('splits a large table into row chunks that each fit a binding', async () => {
    const ctx = await testContext();
    const store = await WeightStore.open(ctx, new FolderSource(model), 'text_encoder', { dtype: 'f32' });
    const key = 'text_model.embeddings.token_embedding.weight';
    const [v, d] = store.info(key)!.shape;
    const { chunks, rowStarts } = store.takeRowChunks(key, [v, d], 1_000_000);
    expect(chunks.length).toBe(Math.ceil(v / Math.floor(1_000_000 / (d * 4))));
    expect(chunks.every((c) => c.byteSize <= 1_000_000)).toBe(true);
    await store.load();
    const all = await readEntryFloat32(store.info(key)!);
    const last = chunks.length - 1;
    expect([...(await chunks[last].read())]).toEqual([...all.subarray(rowStarts[last] * d)]);
    expect([...(await chunks[0].read())]).toEqual([...all.subarray(0, chunks[0].size)]);
    store.disposeAll();
    await store.close();
  });
});
