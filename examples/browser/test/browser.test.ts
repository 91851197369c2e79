// The browser demo in real headless Chromium (Debian's, driven by playwright-core; WebGPU on
// SwiftShader: no shader-f16, so f32): the built page is served on 127.0.0.1 with the bundled tiny
// model, and every test talks to it the way a user would. Checks: the adapter is shown; loading
// reports every file's bytes exactly; Cancel stops a run between steps; a fixed-seed image equals
// Node's (Dawn on lavapipe) within 2/255 with one progress event per step; an interrupted download
// resumes and gives the same image; the Inpaint tab paints a mask with the pointer and matches Node; a missing weight file is named; a second visit loads from the
// cache with no request to the model server (OPFS, and the Cache API fallback); the cache panel
// lists and clears; a GPU memory limit too small for the size is explained; a quantized .gguf loads
// by URL (its size shown first) and as a local file, giving Node's image from the same file; the
// benchmark tab fills its table. A screenshot after
// the run is kept in test-artifacts/browser/ (not committed).
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { applyOverlay, decodePng, encodePng, StableDiffusionXLPipeline, type GenerateResult } from '@ssd/pipeline';
import { fmtBytes } from '@ssd/pipeline/browser';
import { FolderSource, NodeFileSink, quantizeModelToGguf } from '@ssd/tensor';
import { repoRoot, testContext } from '../../../testing/index.js';
import { SMOKE_CASES } from '../../../bench/lib/kernel-cases.js';
import { serveStatic, type StaticServer } from '../server/static.js';
import { launch, type Browser } from './chromium.js';
import { downloadedPng, eventCount, events, fillSettings, loadModel, paintedMask, paintMask, rgbDiff, viteBuild, waitForEvent, type RunSettings } from './demo-page.js';

const here = fileURLToPath(new URL('..', import.meta.url));
const modelsDir = join(repoRoot, 'fixtures/models');
const tinyDir = join(modelsDir, 'tiny-ssd1b');
const artifacts = join(repoRoot, 'test-artifacts/browser');
// SwiftShader is ~7× slower than lavapipe and compiles every pipeline on first use: tiny model, 128², 3 steps
const RUN: RunSettings = { prompt: 'a lighthouse on a cliff at dusk', negativePrompt: 'blurry', steps: 3, guidanceScale: 5, width: 128, height: 128, seed: 42, scheduler: 'euler' };
const LONG = 600_000;
const ggufDir = mkdtempSync(join(tmpdir(), 'ssd-browser-gguf-'));
const ggufFile = join(ggufDir, 'tiny-q8_0.gguf');

/** Model-relative paths and sizes of every file of the tiny model the f32 pipeline reads. */
function tinyFiles(): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (!n.endsWith('.fp16.safetensors')) out.set(relative(tinyDir, p), statSync(p).size);
    }
  };
  walk(tinyDir);
  return out;
}

async function nodeReference(): Promise<GenerateResult> {
  const ctx = await testContext();
  const pipe = await StableDiffusionXLPipeline.fromPretrained(tinyDir, { context: ctx, dtype: 'f32', scheduler: RUN.scheduler, onNotice: () => {} });
  try {
    return await pipe.generate({ prompt: RUN.prompt, negativePrompt: RUN.negativePrompt, guidanceScale: RUN.guidanceScale, numInferenceSteps: RUN.steps, width: RUN.width, height: RUN.height, seed: RUN.seed });
  } finally {
    await pipe.dispose();
  }
}

describe('browser demo in headless Chromium (SwiftShader)', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let reference: Promise<GenerateResult>;
  let readBytes = 0; // the bytes of every file the first load read (what the cache should then hold)
  const modelUrl = () => `${server.url}/models/tiny-ssd1b`;
  const modelRequests = (prefix = '/models') => server.handler.requests.filter((r) => r.path.startsWith(prefix));

  beforeAll(async () => {
    reference = nodeReference();
    reference.catch(() => {}); // awaited by the tests that compare
    await viteBuild(join(here, 'dist'));
    await quantizeModelToGguf(new FolderSource(tinyDir), new NodeFileSink(ggufFile), { type: 'q8_0' });
    server = await serveStatic({ '/': join(here, 'dist'), '/gguf/': ggufDir, '/models/': modelsDir, '/models-flaky/': modelsDir, '/models-missing/': modelsDir, '/models-cacheapi/': modelsDir, '/models-budget/': modelsDir });
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    await page.goto(`${server.url}/`);
  }, LONG);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(ggufDir, { recursive: true, force: true });
  });

  it('shows the adapter and its features', async () => {
    const e = await waitForEvent(page, ['adapter', 'no-webgpu'], 0, 120_000);
    expect(e.type, String(e.message)).toBe('adapter');
    const text = await page.textContent('#adapter');
    expect(text).toMatch(/swiftshader/i);
    expect(text).toMatch(/no shader-f16/);
    expect(await page.inputValue('#dtype')).toBe('f32'); // SwiftShader has no f16: the page picks f32
  });

  it('loads the tiny model by URL, reporting every file byte-accurately', async () => {
    const { done, events: ev } = await loadModel(page, modelUrl());
    expect(done.type, JSON.stringify(done)).toBe('loaded');
    expect(done.storage).toBe('opfs');
    const last = new Map<string, { loadedBytes: number; totalBytes: number; state: string }>();
    for (const e of ev) if (e.type === 'file') last.set(e.path as string, e as never);
    const onDisk = tinyFiles();
    for (const [path, f] of last) {
      expect(onDisk.has(path), path).toBe(true);
      expect(f, path).toMatchObject({ loadedBytes: onDisk.get(path), totalBytes: onDisk.get(path) });
      readBytes += onDisk.get(path)!;
    }
    for (const w of ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'text_encoder_2/model.safetensors']) {
      expect(last.get(w)?.state, w).toBe('done');
    }
  }, LONG);

  it('Cancel stops a run between steps', async () => {
    await fillSettings(page, { ...RUN, steps: 40 });
    const from = await eventCount(page);
    await page.click('#generate');
    await waitForEvent(page, ['step'], from);
    await page.click('#cancel');
    const end = await waitForEvent(page, ['cancelled', 'result', 'error'], from);
    expect(end.type, JSON.stringify(end)).toBe('cancelled');
    await page.waitForTimeout(1000); // nothing may follow
    const ev = (await events(page)).slice(from);
    const steps = ev.filter((e) => e.type === 'step');
    expect(steps.length).toBeGreaterThanOrEqual(1);
    expect(steps.length).toBeLessThan(40);
    expect(ev.findIndex((e) => e.type === 'step' && e.t > end.t)).toBe(-1);
    expect(await page.textContent('#step-status')).toMatch(/Cancelled/);
    expect(await page.isEnabled('#generate')).toBe(true);
  }, LONG);

  it('generates the Node image for a fixed seed (within 2/255), with progress for every step', async () => {
    await fillSettings(page, RUN);
    const from = await eventCount(page);
    const t0 = Date.now();
    await page.click('#generate');
    const end = await waitForEvent(page, ['result', 'error', 'cancelled'], from);
    expect(end.type, JSON.stringify(end)).toBe('result');
    console.log(`browser: ${RUN.steps} steps at ${RUN.width}² in ${Date.now() - t0} ms (page-reported ${Math.round(end.totalMs as number)} ms)`);
    const steps = (await events(page)).slice(from).filter((e) => e.type === 'step');
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(steps.every((s) => s.total === RUN.steps && s.hasPreview)).toBe(true);
    const png = decodePng(await downloadedPng(page), 'downloaded PNG');
    expect([png.width, png.height]).toEqual([RUN.width, RUN.height]);
    expect(png.text.parameters).toContain(RUN.prompt);
    expect(png.text.parameters).toContain(`Seed: ${RUN.seed}`);
    expect(png.text.parameters).toContain(`Steps: ${RUN.steps}`);
    const ref = await reference;
    const diff = rgbDiff(png, ref.images[0]);
    console.log(`browser vs node: image max |Δ| ${diff}/255`);
    expect(diff).toBeLessThanOrEqual(2);
    mkdirSync(artifacts, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(artifacts, 'demo-after-run.png'), fullPage: true });
  }, LONG);

  it('Inpaint tab: a mask painted with the pointer, the Node result composited; outside the mask the image is unchanged', async () => {
    // a synthetic 128² image; the tiny 4-channel model loaded above (the 9-channel fixture UNet lives only in ../shared)
    const w = 128;
    const src = new Uint8ClampedArray(w * w * 4).map((_, i) => (i % 4 === 3 ? 255 : (((i >> 2) % w) * 2 + Math.floor((i >> 2) / w) * (i % 4) * 3) & 255));
    await page.click('[data-tab=inpaint]');
    const from = await eventCount(page);
    await page.setInputFiles('#inpaint-file', { name: 'in.png', mimeType: 'image/png', buffer: Buffer.from(encodePng({ width: w, height: w, data: src })) });
    await waitForEvent(page, ['inpaint-image'], from, 60_000);
    await paintMask(page, [[0.2, 0.5], [0.8, 0.5], [0.8, 0.3]], { size: 60 });
    await paintMask(page, [[0.75, 0.3], [0.85, 0.3]], { size: 20, erase: true });
    const mask = await paintedMask(page);
    expect([mask.width, mask.height]).toEqual([w, w]);
    expect(mask.data[Math.round(0.5 * w) * w + Math.round(0.5 * w)]).toBe(255); // painted
    expect(mask.data[Math.round(0.3 * w) * w + Math.round(0.8 * w)]).toBe(0); // painted, then erased
    expect(mask.data[5 * w + 5]).toBe(0);
    const s = { prompt: 'a lighthouse', negativePrompt: 'blurry', steps: 3, guidanceScale: 5, strength: 0.75, seed: 7 };
    await page.fill('#inpaint-prompt', s.prompt);
    await page.fill('#inpaint-negative', s.negativePrompt);
    await page.fill('#inpaint-steps', String(s.steps));
    await page.fill('#inpaint-guidance', String(s.guidanceScale));
    await page.fill('#inpaint-strength', String(s.strength));
    await page.fill('#inpaint-seed', String(s.seed));
    const start = await eventCount(page);
    await page.click('#inpaint-run');
    const end = await waitForEvent(page, ['inpaint-result', 'error', 'cancelled'], start);
    expect(end.type, JSON.stringify(end)).toBe('inpaint-result');
    expect((await events(page)).slice(start).filter((e) => e.type === 'inpaint-step').map((e) => e.step)).toEqual([1, 2]); // ⌊3 · 0.75⌋ steps
    const bytes = await page.evaluate(async () => Array.from(new Uint8Array(await (await fetch((document.getElementById('inpaint-download') as HTMLAnchorElement).href)).arrayBuffer())));
    const png = decodePng(Uint8Array.from(bytes), 'inpainted PNG');
    expect(png.text.parameters).toContain('Denoising strength: 0.75');
    // Node (Dawn on lavapipe), same image, mask and settings, composited the same way
    const ctx = await testContext();
    const pipe = await StableDiffusionXLPipeline.fromPretrained(tinyDir, { context: ctx, dtype: 'f32', scheduler: RUN.scheduler, onNotice: () => {} });
    let node: GenerateResult;
    try {
      node = await pipe.inpaint({ ...s, numInferenceSteps: s.steps, image: { width: w, height: w, data: src }, maskImage: { ...mask, channels: 1 } });
    } finally {
      await pipe.dispose();
    }
    const want = applyOverlay({ ...mask, channels: 1 }, { width: w, height: w, data: src }, node.images[0]);
    const diff = rgbDiff(png, want);
    console.log(`browser vs node inpaint (composited): image max |Δ| ${diff}/255`);
    mkdirSync(artifacts, { recursive: true });
    writeFileSync(join(artifacts, 'inpaint-page.png'), Uint8Array.from(bytes));
    writeFileSync(join(artifacts, 'inpaint-node.png'), encodePng(want));
    writeFileSync(join(artifacts, 'inpaint-node-raw.png'), encodePng(node.images[0]));
    writeFileSync(join(artifacts, 'inpaint-mask.png'), encodePng({ width: w, height: w, data: Uint8ClampedArray.from({ length: w * w * 4 }, (_, i) => (i % 4 === 3 ? 255 : mask.data[i >> 2])) }));
    expect(diff).toBeLessThanOrEqual(2);
    // diffusers' raw output keeps nothing exactly (the VAE round trip); the composite keeps every pixel the mask leaves black
    let kept = 0, worst = 0, changed = 0;
    for (let p = 0; p < w * w; p++) {
      const d = Math.max(...[0, 1, 2].map((c) => Math.abs(png.data[p * 4 + c] - src[p * 4 + c])));
      if (mask.data[p] === 0) (kept++, (worst = Math.max(worst, d)));
      else if (mask.data[p] === 255 && d > 2) changed++;
    }
    expect(kept).toBeGreaterThan(w * w * 0.3);
    expect(worst).toBeLessThanOrEqual(2);
    expect(changed).toBeGreaterThan(100);
    await page.screenshot({ path: join(artifacts, 'demo-inpaint.png'), fullPage: true });
    await page.click('[data-tab=generate]');
  }, LONG);

  it('resumes an interrupted download, keeps no half-written entry, and the resumed weights give the same image', async () => {
    const unet = 'tiny-ssd1b/unet/diffusion_pytorch_model.safetensors';
    const flaky = `${server.url}/models-flaky/tiny-ssd1b`;
    server.handler.misbehave.set(`/models-flaky/${unet}`, 'drop-mid-file');
    const first = await loadModel(page, flaky);
    expect(first.done.type, JSON.stringify(first.done)).toBe('error');
    expect(String(first.done.message)).toMatch(/connection (dropped|closed)/);
    const fromList = await eventCount(page);
    await page.click('#cache-box summary'); // opening the panel lists the cache

    const listed = await waitForEvent(page, ['cache-list'], fromList);
    const model = (listed.models as { base: string; files: number; partialBytes: number }[]).find((m) => m.base === flaky);
    expect(model?.partialBytes).toBeGreaterThan(0); // kept for resuming, not committed
    server.handler.misbehave.clear();
    const before = server.handler.requests.length;
    const second = await loadModel(page, flaky);
    expect(second.done.type, JSON.stringify(second.done)).toBe('loaded');
    const unetGets = server.handler.requests.slice(before).filter((r) => r.path.endsWith(unet) && r.method === 'GET');
    expect(unetGets.length).toBe(1);
    expect(unetGets[0].status).toBe(206);
    expect(Number(/bytes=(\d+)-/.exec(unetGets[0].range ?? '')?.[1])).toBe(model!.partialBytes);
    // the resumed file is byte-exact: the same seed gives the same image
    await fillSettings(page, RUN);
    const from = await eventCount(page);
    await page.click('#generate');
    const end = await waitForEvent(page, ['result', 'error'], from);
    expect(end.type, JSON.stringify(end)).toBe('result');
    expect(rgbDiff(decodePng(await downloadedPng(page)), (await reference).images[0])).toBeLessThanOrEqual(2);
  }, LONG);

  it('names a missing weight file', async () => {
    for (const p of ['unet/diffusion_pytorch_model.safetensors', 'unet/model.safetensors', 'unet/diffusion_pytorch_model.safetensors.index.json', 'unet/model.safetensors.index.json']) {
      server.handler.misbehave.set(`/models-missing/tiny-ssd1b/${p}`, 'status-404');
    }
    const { done } = await loadModel(page, `${server.url}/models-missing/tiny-ssd1b`);
    server.handler.misbehave.clear();
    expect(done.type).toBe('error');
    expect(done.kind).toBe('missing-file');
    const msg = await page.textContent('#messages');
    expect(msg).toMatch(/A file of the model is missing/);
    expect(msg).toMatch(/no weights for "unet"/);
  }, LONG);

  it('a second visit loads the model from the cache without asking the server for any model file', async () => {
    await page.reload();
    await waitForEvent(page, ['adapter'], 0, 120_000);
    const before = modelRequests().length;
    const { done, events: ev } = await loadModel(page, modelUrl());
    expect(done.type, JSON.stringify(done)).toBe('loaded');
    expect(modelRequests().slice(before)).toEqual([]);
    const files = ev.filter((e) => e.type === 'file');
    expect(files.length).toBeGreaterThan(0);
    expect(files.every((e) => e.state === 'cached')).toBe(true);
  }, LONG);

  it('lists cached models with their sizes and clears one', async () => {
    const from = await eventCount(page);
    await page.click('#cache-box summary'); // closed again after the reload; opening it lists the cache
    const listed = await waitForEvent(page, ['cache-list'], from);
    const models = listed.models as { base: string; files: number; sizeBytes: number; partialBytes: number }[];
    const tiny = models.find((m) => m.base === modelUrl());
    expect(tiny?.sizeBytes).toBe(readBytes);
    expect(models.find((m) => m.base.includes('/models-flaky/'))?.partialBytes).toBe(0);
    const from2 = await eventCount(page);
    await page.click(`#cache-list tr[data-base="${modelUrl()}"] button`);
    const cleared = await waitForEvent(page, ['cache-cleared'], from2);
    expect(cleared.base).toBe(modelUrl());
    // the listing made after the clear (one made before it may still arrive first)
    const clearedAt = (await events(page)).findIndex((e, i) => i >= from2 && e.type === 'cache-cleared');
    const after = await waitForEvent(page, ['cache-list'], clearedAt + 1);
    expect((after.models as { base: string }[]).map((m) => m.base)).not.toContain(modelUrl());
  }, LONG);

  it('falls back to the Cache API (?storage=cache-api): a second visit is served from it too', async () => {
    const other = await browser.context.newPage();
    try {
      await other.goto(`${server.url}/?storage=cache-api`);
      await waitForEvent(other, ['adapter'], 0, 120_000);
      const url = `${server.url}/models-cacheapi/tiny-ssd1b`;
      const first = await loadModel(other, url);
      expect(first.done.type, JSON.stringify(first.done)).toBe('loaded');
      expect(first.done.storage).toBe('cache-api');
      await other.reload();
      await waitForEvent(other, ['adapter'], 0, 120_000);
      const before = modelRequests('/models-cacheapi/').length;
      const second = await loadModel(other, url);
      expect(second.done.type, JSON.stringify(second.done)).toBe('loaded');
      expect(modelRequests('/models-cacheapi/').slice(before)).toEqual([]);
      expect(second.events.filter((e) => e.type === 'file').every((e) => e.state === 'cached')).toBe(true);
    } finally {
      await other.close();
    }
  }, LONG);

  it('explains a GPU memory limit too small for the chosen size (?gpuBudgetMiB=)', async () => {
    const small = await browser.context.newPage();
    try {
      await small.goto(`${server.url}/?gpuBudgetMiB=48`); // the tiny model needs ~20 MiB at 128², far more at 1024²
      await waitForEvent(small, ['adapter'], 0, 120_000);
      const { done } = await loadModel(small, `${server.url}/models-budget/tiny-ssd1b`); // its own copy: no other test's cache
      expect(done.type, JSON.stringify(done)).toBe('loaded');
      await fillSettings(small, { ...RUN, steps: 1, width: 1024, height: 1024 });
      const from = await eventCount(small);
      await small.click('#generate');
      const end = await waitForEvent(small, ['error', 'result'], from);
      expect(end.type, JSON.stringify(end)).toBe('error');
      console.log(`memory message: ${end.message}`);
      expect(end.kind).toBe('memory');
      const msg = await small.textContent('#messages');
      expect(msg).toMatch(/Not enough GPU memory for 1024 × 1024/);
      expect(msg).toMatch(/smaller size/);
      expect(await small.isEnabled('#generate')).toBe(true); // the pipeline stays usable
    } finally {
      await small.close();
    }
  }, LONG);

  it('offers a quantized .gguf by URL (its size shown before loading) and as a local file, with the image Node makes from it', async () => {
    const url = `${server.url}/gguf/tiny-q8_0.gguf`;
    const size = statSync(ggufFile).size;
    await page.check('input[name=source][value=url]');
    await page.fill('#model-url', url);
    await page.waitForFunction(() => !!document.getElementById('url-size')?.textContent);
    expect(await page.textContent('#url-size')).toBe(`tiny-q8_0.gguf: ${fmtBytes(size)}`);
    const { done, events: ev } = await loadModel(page, url);
    expect(done.type, JSON.stringify(done)).toBe('loaded');
    const file = ev.filter((e) => e.type === 'file').pop();
    expect(file).toMatchObject({ path: 'tiny-q8_0.gguf', loadedBytes: size, totalBytes: size });
    const small = { ...RUN, steps: 1, width: 64, height: 64 };
    await fillSettings(page, small);
    const from = await eventCount(page);
    await page.click('#generate');
    const end = await waitForEvent(page, ['result', 'error'], from);
    expect(end.type, JSON.stringify(end)).toBe('result');
    const pipe = await StableDiffusionXLPipeline.fromSingleFile(ggufFile, { context: await testContext(), dtype: 'f32', scheduler: small.scheduler, onNotice: () => {} });
    const ref = await pipe.generate({ prompt: small.prompt, negativePrompt: small.negativePrompt, guidanceScale: small.guidanceScale, numInferenceSteps: 1, width: 64, height: 64, seed: small.seed });
    await pipe.dispose();
    expect(rgbDiff(decodePng(await downloadedPng(page)), ref.images[0])).toBeLessThanOrEqual(2);
    // the same file picked on this computer
    const from2 = await eventCount(page);
    await page.setInputFiles('#file-input', ggufFile);
    expect(await page.textContent('#file-name')).toBe(`tiny-q8_0.gguf (${fmtBytes(size)})`);
    await page.click('#load');
    const local = await waitForEvent(page, ['loaded', 'error'], from2);
    expect(local, JSON.stringify(local)).toMatchObject({ type: 'loaded', storage: 'local files' });
  }, LONG);

  it('the benchmark tab runs the kernel cases and shows the table', async () => {
    await page.click('[data-tab=bench]');
    await page.selectOption('#bench-set', 'smoke');
    await page.uncheck('#bench-f16');
    await page.fill('#bench-runs', '1');
    const from = await eventCount(page);
    await page.click('#bench-run');
    const end = await waitForEvent(page, ['bench-done', 'bench-error'], from);
    expect(end.type).toBe('bench-done');
    const rows = await page.$$eval('#bench-table tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows.length).toBe(SMOKE_CASES.length); // f32 (the f16 box is unchecked): one row per smoke case
    for (const r of rows) expect(Number(r[3])).toBeGreaterThan(0);
    mkdirSync(artifacts, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(artifacts, 'bench-tab.png'), fullPage: true });
  }, LONG);
});
