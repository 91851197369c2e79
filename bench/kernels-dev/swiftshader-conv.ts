// The kernel benchmark's conv rows (direct, Winograd F(2×2) and F(4×4)) on Chromium's SwiftShader, through
// the demo's own bench worker in headless Chromium: whether Winograd's choice for CPU adapters holds there.
//   pnpm --filter browser build && node --conditions=source --import tsx bench/kernels-dev/swiftshader-conv.ts [--runs 3] [--set full|smoke]
//        [--out bench/results/winograd-swiftshader.json]
// Rows are timed as bench:kernels times them (warm-up, median of --runs); the cases run one after the other.
import { readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '../../examples/browser/server/static.js';
import { launch } from '../../examples/browser/test/chromium.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const dist = fileURLToPath(new URL('../../examples/browser/dist/', import.meta.url));
const worker = readdirSync(`${dist}assets`).find((f) => /^bench-worker-.*\.js$/.test(f));
if (!worker) throw new Error(`no bench worker in ${dist}assets: build the demo first (pnpm --filter browser build)`);
const server = await serveStatic({ '/': dist.replace(/\/$/, '') });
const browser = await launch();
try {
  const page = await browser.context.newPage();
  await page.goto(`${server.url}/`);
  const rows = await page.evaluate(
    ([url, runs, set]) =>
      new Promise<unknown[]>((resolve, reject) => {
        const w = new Worker(url, { type: 'module' });
        const out: unknown[] = [];
        w.onmessage = (e: MessageEvent<{ type: string; row?: unknown; message?: string; adapter?: unknown }>) => {
          if (e.data.type === 'start') out.push({ adapter: e.data.adapter });
          if (e.data.type === 'row') out.push(e.data.row);
          if (e.data.type === 'done') resolve(out);
          if (e.data.type === 'error') reject(new Error(e.data.message));
        };
        w.postMessage({ type: 'run', set, dtypes: ['f32'], runs, only: ['conv'] });
      }),
    [`/assets/${worker}`, Number(arg('runs', '3')), arg('set', 'full')] as const,
  );
  for (const r of rows) console.log(JSON.stringify(r));
  const out = arg('out', '');
  if (out) {
    const result = { bench: 'conv rows of the kernel benchmark in headless Chromium (bench/kernels-dev/swiftshader-conv.ts)', date: new Date().toISOString(), note: `measured under load: load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} CPUs (${cpus()[0]?.model})`, runs: Number(arg('runs', '3')), rows };
    writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
    console.log(`wrote ${out}`);
  }
} finally {
  await browser.close();
  await server.close();
}
