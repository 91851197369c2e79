// Driving the demo page from a test: build it, wait for worker events (window.ssdDemo.events), fill
// the form, read the PNG behind the download link and compare it with Node's image.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { maxAbsDiff } from '../../../testing/index.js';
import type { GenerateParams } from '../src/protocol.js';

export interface DemoEvent {
  t: number;
  type: string;
  [k: string]: unknown;
}

/** What the test fills into the form: the page's own generate parameters. */
export type RunSettings = GenerateParams;

const demoDir = fileURLToPath(new URL('..', import.meta.url));

/** `vite build` of the page into `outDir` (each test file its own, as files run in parallel). */
export function viteBuild(outDir: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(`${demoDir}/node_modules/.bin/vite`, ['build', '--logLevel', 'warn', '--outDir', outDir, '--emptyOutDir'], { cwd: demoDir, timeout: 240_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`vite build failed: ${err.message}\n${stdout}\n${stderr}`)) : resolve(),
    ),
  );
}

/** Max |Δ| over RGB between the page's PNG and Node's image. */
export function rgbDiff(png: { width: number; height: number; data: ArrayLike<number> }, ref: { data: ArrayLike<number> }): number {
  const n = png.width * png.height;
  const a = new Uint8Array(n * 3);
  const b = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) (a[p * 3 + c] = png.data[p * 4 + c]), (b[p * 3 + c] = ref.data[p * 4 + c]);
  return maxAbsDiff(a, b);
}

export async function events(page: Page): Promise<DemoEvent[]> {
  return page.evaluate(() => (window as unknown as { ssdDemo: { events: DemoEvent[] } }).ssdDemo.events);
}

/** Waits until an event of one of `types` arrives at index ≥ `from`; returns it. */
export async function waitForEvent(page: Page, types: string[], from = 0, timeoutMs = 600_000): Promise<DemoEvent> {
  const handle = await page.waitForFunction(
    ([ts, start]) => (window as unknown as { ssdDemo: { events: DemoEvent[] } }).ssdDemo.events.slice(start as number).find((e) => (ts as string[]).includes(e.type)) ?? false,
    [types, from] as const,
    { timeout: timeoutMs, polling: 200 },
  );
  return (await handle.jsonValue()) as DemoEvent;
}

export async function eventCount(page: Page): Promise<number> {
  return (await events(page)).length;
}

/** Loads a model by URL (f32 unless said otherwise) and waits for 'loaded' or 'error'. */
export async function loadModel(page: Page, url: string, o: { dtype?: 'f16' | 'f32'; cache?: boolean } = {}): Promise<{ done: DemoEvent; events: DemoEvent[] }> {
  const from = await eventCount(page);
  await page.check('input[name=source][value=url]');
  await page.fill('#model-url', url);
  await page.selectOption('#dtype', o.dtype ?? 'f32');
  if ((o.cache ?? true) !== (await page.isChecked('#use-cache'))) await page.click('#use-cache');
  await page.click('#load');
  const done = await waitForEvent(page, ['loaded', 'error', 'cancelled'], from);
  return { done, events: (await events(page)).slice(from) };
}

export async function fillSettings(page: Page, s: RunSettings): Promise<void> {
  await page.fill('#prompt', s.prompt);
  await page.fill('#negative', s.negativePrompt);
  await page.fill('#steps', String(s.steps));
  await page.fill('#guidance', String(s.guidanceScale));
  await page.selectOption('#scheduler', s.scheduler);
  await page.selectOption('#size', 'custom');
  await page.fill('#width', String(s.width));
  await page.fill('#height', String(s.height));
  await page.fill('#seed', String(s.seed));
}

/** The bytes of the PNG the page offers for download. */
export async function downloadedPng(page: Page): Promise<Uint8Array> {
  const bytes = await page.evaluate(async () => {
    const a = document.getElementById('download') as HTMLAnchorElement;
    return Array.from(new Uint8Array(await (await fetch(a.href)).arrayBuffer()));
  });
  return Uint8Array.from(bytes);
}

/** Drags the mouse over the Inpaint tab's mask canvas through `points` (fractions of its size), brush `size` px, erasing or painting. */
export async function paintMask(page: Page, points: [number, number][], o: { size: number; erase?: boolean }): Promise<void> {
  await page.fill('#brush-size', String(o.size));
  if ((o.erase ?? false) !== (await page.isChecked('#brush-erase'))) await page.click('#brush-erase');
  const box = (await page.locator('#inpaint-mask').boundingBox())!;
  const xy = ([fx, fy]: [number, number]) => [box.x + fx * box.width, box.y + fy * box.height] as const;
  await page.mouse.move(...xy(points[0]));
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(...xy(p), { steps: 4 });
  await page.mouse.up();
}

/** The painted mask as the page will send it: the mask canvas's alpha, one byte per pixel. */
export async function paintedMask(page: Page): Promise<{ width: number; height: number; data: Uint8Array }> {
  const m = await page.evaluate(() => {
    const c = document.getElementById('inpaint-mask') as HTMLCanvasElement;
    const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    return { width: c.width, height: c.height, data: Array.from({ length: c.width * c.height }, (_, p) => px[p * 4 + 3]) };
  });
  return { ...m, data: Uint8Array.from(m.data) };
}

/** Moves a range input to `value` as a user's drag ends: 'input', then 'change'. */
export async function setRange(page: Page, selector: string, value: number): Promise<void> {
  await page.$eval(selector, (el, v) => {
    const input = el as HTMLInputElement;
    input.value = String(v);
    input.dispatchEvent(new Event('input', { bubbles: true }));
    input.dispatchEvent(new Event('change', { bubbles: true }));
  }, value);
}
