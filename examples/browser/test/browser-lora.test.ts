// The LoRA panel in headless Chromium (SwiftShader, f32) vs the library in Node, tiny model: a LoRA by URL
// at 0.6 = Node's loadLoraWeights + setAdapters within 1/255, PNG with <lora:…:0.6> and its hash; the
// slider reloads nothing; a model reload keeps it; removing it = no-LoRA image; LCM-LoRA file + Few-step
// preset = Node's LCM run; bad files explained; the cache panel lists/clears it. LoRA fixtures are served
// from ../shared/fixtures (never copied); a screenshot goes to test-artifacts/browser/.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { decodePng, StableDiffusionXLPipeline, type RgbaImage } from '@ssd/pipeline';
import { encodeSafetensors } from '@ssd/tensor';
import { fixturesDir, hasFixtures, repoRoot, testContext } from '../../../testing/index.js';
import { serveStatic, type StaticServer } from '../server/static.js';
import { launch, type Browser } from './chromium.js';
import { downloadedPng, eventCount, events, fillSettings, loadModel, rgbDiff, setRange, viteBuild, waitForEvent, type RunSettings } from './demo-page.js';

const modelsDir = join(repoRoot, 'fixtures/models');
const tinyDir = join(modelsDir, 'tiny-ssd1b');
const lorasDir = join(fixturesDir, 'models/loras');
const SGM = 'lora_kohya_sgm.safetensors';
const LCM = 'lcm_lora_kohya_diffusers.fp16.safetensors';
// SwiftShader is slow and compiles every pipeline (the LoRA side paths too) on first use: 64², 3 steps
const RUN: RunSettings = { prompt: 'a watercolor painting of a fox in a snowy forest', negativePrompt: 'blurry, low quality', steps: 3, guidanceScale: 5, width: 64, height: 64, seed: 3111, scheduler: 'euler' };
const LONG = 600_000;
const artifacts = join(repoRoot, 'test-artifacts/browser');
const distDir = mkdtempSync(join(tmpdir(), 'ssd-browser-lora-dist-'));

interface NodeRuns {
  base: RgbaImage;
  lora: RgbaImage;
  lcm: RgbaImage;
}

/** The same runs through the library: no LoRA; the SGM LoRA at 0.6; the LCM-LoRA with lcm, 4 steps, guidance 1. */
async function nodeRuns(): Promise<NodeRuns> {
  const pipe = await StableDiffusionXLPipeline.fromPretrained(tinyDir, { context: await testContext(), dtype: 'f32', scheduler: RUN.scheduler, onNotice: () => {} });
  try {
    const o = { prompt: RUN.prompt, negativePrompt: RUN.negativePrompt, guidanceScale: RUN.guidanceScale, numInferenceSteps: RUN.steps, width: RUN.width, height: RUN.height, seed: RUN.seed };
    const base = await pipe.generate(o);
    await pipe.loadLoraWeights(join(lorasDir, SGM), { adapterName: 'sgm' });
    await pipe.setAdapters('sgm', 0.6);
    const lora = await pipe.generate(o);
    await pipe.unloadLoraWeights();
    await pipe.loadLoraWeights(join(lorasDir, LCM), { adapterName: 'lcm' });
    pipe.setScheduler('lcm');
    const lcm = await pipe.generate({ ...o, numInferenceSteps: 4, guidanceScale: 1 });
    return { base: base.images[0], lora: lora.images[0], lcm: lcm.images[0] };
  } finally {
    await pipe.dispose();
  }
}

/** A1111's AutoV3, computed independently of the page: sha256 of the bytes after the safetensors header. */
function autoV3(file: string): string {
  const bytes = readFileSync(file);
  return createHash('sha256').update(bytes.subarray(8 + Number(bytes.readBigUInt64LE(0)))).digest('hex').slice(0, 12);
}

async function generate(page: Page): Promise<{ png: ReturnType<typeof decodePng>; steps: number[] }> {
  const from = await eventCount(page);
  await page.click('#generate');
  const end = await waitForEvent(page, ['result', 'error', 'cancelled'], from);
  expect(end.type, JSON.stringify(end)).toBe('result');
  const steps = (await events(page)).slice(from).filter((e) => e.type === 'step').map((e) => e.step as number);
  return { png: decodePng(await downloadedPng(page), 'downloaded PNG'), steps };
}

/** Adds a LoRA by URL and waits for the worker's answer. */
async function addByUrl(page: Page, url: string) {
  const from = await eventCount(page);
  await page.fill('#lora-url', url);
  await page.click('#lora-add-url');
  return waitForEvent(page, ['lora-loaded', 'error', 'cancelled'], from);
}

describe.skipIf(!hasFixtures(`models/loras/${SGM}`, `models/loras/${LCM}`))('browser demo: LoRA panel in headless Chromium (SwiftShader)', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let node: Promise<NodeRuns>;
  let basePng: Uint8ClampedArray | Uint8Array;
  let loraPng: Uint8ClampedArray | Uint8Array;
  const loraRequests = () => server.handler.requests.filter((r) => r.path.startsWith('/loras/') || r.path.startsWith('/models/'));

  beforeAll(async () => {
    node = nodeRuns();
    node.catch(() => {}); // awaited by the tests that compare
    await viteBuild(distDir);
    server = await serveStatic({ '/': distDir, '/models/': modelsDir, '/loras/': lorasDir });
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    await page.goto(`${server.url}/`);
    await waitForEvent(page, ['adapter'], 0, 120_000);
    expect(await page.isDisabled('#lora-add-url')).toBe(true); // no model yet
    const { done } = await loadModel(page, `${server.url}/models/tiny-ssd1b`);
    expect(done.type, JSON.stringify(done)).toBe('loaded');
    await fillSettings(page, RUN);
  }, LONG);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(distDir, { recursive: true, force: true });
  });

  it('a LoRA by URL at weight 0.6 gives Node\'s image (within 1/255), recorded in the PNG; the slider reloads nothing', async () => {
    const base = await generate(page);
    basePng = base.png.data;
    expect(rgbDiff(base.png, (await node).base)).toBeLessThanOrEqual(2);
    expect(base.png.text.parameters).not.toContain('<lora:');

    const loaded = await addByUrl(page, `${server.url}/loras/${SGM}`);
    expect(loaded.type, JSON.stringify(loaded)).toBe('lora-loaded');
    expect(loaded).toMatchObject({ name: 'lora_kohya_sgm', layout: 'kohya-sgm', modules: { unet: 253, text_encoder: 18, text_encoder_2: 24 }, hash: autoV3(join(lorasDir, SGM)) });
    const id = loaded.id as string;
    expect(await page.textContent(`#lora-list li[data-id="${id}"] .info`)).toMatch(/kohya-sgm/);

    const beforeRequests = loraRequests().length;
    const from = await eventCount(page);
    await setRange(page, `#lora-list li[data-id="${id}"] input.weight`, 0.6);
    expect(await page.textContent(`#lora-list li[data-id="${id}"] output`)).toBe('0.60');
    const { png, steps } = await generate(page);
    expect(steps).toEqual([1, 2, 3]);
    // the weight went to set_adapters: no file was asked for, nothing downloaded, uploaded or loaded again
    expect(loraRequests().slice(beforeRequests)).toEqual([]);
    expect((await events(page)).slice(from).filter((e) => ['file', 'upload', 'lora-progress', 'lora-loaded', 'loaded'].includes(e.type))).toEqual([]);

    const ref = await node;
    const diff = rgbDiff(png, ref.lora);
    console.log(`browser vs node, LoRA at 0.6: image max |Δ| ${diff}/255 (the LoRA itself moves it by ${rgbDiff(png, ref.base)}/255)`);
    expect(diff).toBeLessThanOrEqual(1);
    expect(rgbDiff(png, ref.base)).toBeGreaterThan(10);
    loraPng = png.data;
    expect(png.text.parameters).toContain(`${RUN.prompt} <lora:lora_kohya_sgm:0.6>`);
    expect(png.text.parameters).toContain(`Lora hashes: "lora_kohya_sgm: ${autoV3(join(lorasDir, SGM))}"`);
    mkdirSync(artifacts, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(artifacts, 'demo-lora.png'), fullPage: true });
  }, LONG);

  it('loading the model again puts the LoRA back at its weight; removing it gives the no-LoRA image exactly', async () => {
    const reload = await eventCount(page);
    const { done } = await loadModel(page, `${server.url}/models/tiny-ssd1b`);
    expect(done.type, JSON.stringify(done)).toBe('loaded');
    expect(await waitForEvent(page, ['lora-loaded', 'error'], reload)).toMatchObject({ type: 'lora-loaded', name: 'lora_kohya_sgm' });
    await fillSettings(page, RUN); // a load resets the size and scheduler to the model's
    expect(Buffer.from((await generate(page)).png.data).equals(Buffer.from(loraPng))).toBe(true);

    const from = await eventCount(page);
    await page.click('#lora-list li .remove');
    await waitForEvent(page, ['lora-removed'], from);
    expect(await page.$$('#lora-list li')).toHaveLength(0);
    const { png } = await generate(page);
    expect(Buffer.from(png.data).equals(Buffer.from(basePng))).toBe(true);
    expect(png.text.parameters).not.toContain('<lora:');
  }, LONG);

  it('an LCM-LoRA as a local file and the Few-step (LCM) preset: Node\'s 4-step LCM run without a CFG batch', async () => {
    const from = await eventCount(page);
    await page.setInputFiles('#lora-file', join(lorasDir, LCM));
    const loaded = await waitForEvent(page, ['lora-loaded', 'error'], from);
    expect(loaded, JSON.stringify(loaded)).toMatchObject({ type: 'lora-loaded', name: 'lcm_lora_kohya_diffusers.fp16', layout: 'kohya-diffusers', hash: autoV3(join(lorasDir, LCM)) });
    await page.click('#preset-lcm');
    expect([await page.inputValue('#scheduler'), await page.inputValue('#steps'), await page.inputValue('#guidance')]).toEqual(['lcm', '4', '1']);
    const { png, steps } = await generate(page);
    expect(steps).toEqual([1, 2, 3, 4]);
    const diff = rgbDiff(png, (await node).lcm);
    console.log(`browser vs node, LCM-LoRA + lcm, 4 steps: image max |Δ| ${diff}/255`);
    expect(diff).toBeLessThanOrEqual(1);
    expect(png.text.parameters).toContain('<lora:lcm_lora_kohya_diffusers.fp16:1>');
    expect(png.text.parameters).toMatch(/Steps: 4, Sampler: lcm, CFG scale: 1,/);
    const removed = await eventCount(page);
    await page.click('#lora-list li .remove');
    await waitForEvent(page, ['lora-removed'], removed);
    await fillSettings(page, RUN);
  }, LONG);

  it('explains a URL that is not a LoRA and a LoRA that does not fit the model, and keeps neither', async () => {
    const notLora = await addByUrl(page, `${server.url}/models/tiny-ssd1b/unet/diffusion_pytorch_model.safetensors`);
    expect(notLora, JSON.stringify(notLora)).toMatchObject({ type: 'error', op: 'lora', kind: 'model' });
    let msg = await page.textContent('#messages');
    expect(msg).toMatch(/The LoRA diffusion_pytorch_model\.safetensors could not be added/);
    expect(msg).toMatch(/not a LoRA file we recognise/);
    // kohya names with diffusers modules: one layer of the wrong shape, one that the model does not have
    const pair = (down: number[], up: number[]) => ({
      [`lora_down.weight`]: { dtype: 'F32' as const, shape: down, data: new Float32Array(down[0] * down[1]).fill(0.01) },
      [`lora_up.weight`]: { dtype: 'F32' as const, shape: up, data: new Float32Array(up[0] * up[1]).fill(0.01) },
    });
    const tensors = Object.fromEntries([
      ...Object.entries(pair([2, 7], [5, 2])).map(([k, v]) => [`lora_unet_down_blocks_1_attentions_0_proj_in.${k}`, v]),
      ...Object.entries(pair([2, 7], [5, 2])).map(([k, v]) => [`lora_unet_down_blocks_7_attentions_0_proj_in.${k}`, v]),
    ]);
    const from = await eventCount(page);
    await page.setInputFiles('#lora-file', { name: 'misfit.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(encodeSafetensors(tensors)) });
    const misfit = await waitForEvent(page, ['lora-loaded', 'error'], from);
    expect(misfit, JSON.stringify(misfit)).toMatchObject({ type: 'error', op: 'lora', kind: 'model' });
    msg = await page.textContent('#messages');
    expect(msg).toMatch(/The LoRA misfit\.safetensors could not be added/);
    expect(msg).toMatch(/read as layout "kohya-diffusers"/);
    expect(msg).toMatch(/lora_unet_down_blocks_7_attentions_0_proj_in\.lora_down\.weight .*maps to no layer/);
    expect(msg).toMatch(/shape mismatch: lora_unet_down_blocks_1_attentions_0_proj_in\.lora_down\.weight/);
    expect(await page.$$('#lora-list li')).toHaveLength(0);
    // and the pipeline is the base model still
    const { png } = await generate(page);
    expect(Buffer.from(png.data).equals(Buffer.from(basePng))).toBe(true);
  }, LONG);

  it('the cache panel lists the LoRA\'s file and clears it', async () => {
    const from = await eventCount(page);
    await page.click('#cache-box summary');
    const listed = await waitForEvent(page, ['cache-list'], from);
    const base = `${server.url}/loras`;
    const entry = (listed.models as { base: string; paths: string[]; sizeBytes: number }[]).find((m) => m.base === base);
    expect(entry).toMatchObject({ paths: [SGM], sizeBytes: readFileSync(join(lorasDir, SGM)).length });
    expect(await page.textContent(`#cache-list tr[data-base="${base}"] td.name`)).toContain(SGM);
    const from2 = await eventCount(page);
    await page.click(`#cache-list tr[data-base="${base}"] button`);
    await waitForEvent(page, ['cache-cleared'], from2);
    const clearedAt = (await events(page)).findIndex((e, i) => i >= from2 && e.type === 'cache-cleared');
    const after = await waitForEvent(page, ['cache-list'], clearedAt + 1);
    expect((after.models as { base: string }[]).map((m) => m.base)).not.toContain(base);
  }, LONG);
});
