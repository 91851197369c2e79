// pnpm bench:kernels — kernel microbenchmarks at SDXL shapes, f32 and f16: matmul (also with q8_0 / q4_K
// weights, each timed interleaved with the float matmul), conv 3×3 (direct, and Winograd F(2×2) / F(4×4)
// beside it in GFLOP/s-equivalent), attention, groupNorm; ms, GFLOP/s or GB/s, fraction of peak, against
// tfjs-backend-webgpu. Writes bench/results/kernels-<adapter>.json; `--only matmul,conv` picks cases
// (nothing written), `--json` prints the result as stdout's last line, `--runs N`, `--no-peer`, `--note`.
import { writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createContext } from '@ssd/tensor';
import { CASES, formatPerf, measureCase, type DType, type Row } from './lib/kernel-cases.js';
import { loadTfjs } from './lib/tfjs.js';
import { adapterSlug, argValue, fmtMs, hostRecord } from './lib/timing.js';

const argv = process.argv.slice(2);
const only = argValue(argv, 'only')?.split(',');
const runs = Number(argValue(argv, 'runs') ?? 5);
const asJson = argv.includes('--json');
const wantPeer = !argv.includes('--no-peer');
const dtypes = (argValue(argv, 'dtype')?.split(',') ?? ['f32', 'f16']) as DType[];
const peakOverride = argValue(argv, 'peak-gflops') ? Number(argValue(argv, 'peak-gflops')) : undefined;

async function main(): Promise<void> {
  const ctx = await createContext();
  const info = ctx.info;
  const log = (s: string) => (asJson ? process.stderr.write(s + '\n') : console.log(s));
  log(`adapter: ${info.description} (${info.features.join(', ')})`);
  const peer = wantPeer ? await loadTfjs(ctx) : null;
  const rows: Row[] = [];
  for (const c of CASES) {
    if (only && !only.includes(c.op)) continue;
    for (const dtype of dtypes) {
      if (dtype === 'f16' && !ctx.f16) continue;
      if (c.dtypes && !c.dtypes.includes(dtype)) continue;
      const row: Row = await measureCase(ctx, c, dtype, { runs, peakOverride });
      if (peer && c.peer && dtype === 'f32') {
        try {
          const p = c.peer(peer);
          const ms = await peer.time(() => p.run(), runs);
          p.dispose();
          const scaled = ms * (p.scale ?? 1);
          row.peer = { name: 'tfjs-webgpu', ms: scaled, gflops: c.flop ? c.flop / (scaled / 1000) / 1e9 : undefined, ratio: scaled / row.ms };
        } catch (e) {
          row.peer = { name: 'tfjs-webgpu', error: (e as Error).message.split('\n')[0] };
        }
      }
      rows.push(row);
      const perf = formatPerf(row);
      const peerTxt = row.peer ? ('error' in row.peer ? `tfjs: ${row.peer.error}` : `tfjs ${fmtMs(row.peer.ms)} ms → ours ${row.peer.ratio.toFixed(1)}× faster`) : '';
      log(`${c.op.padEnd(10)} ${c.shape.padEnd(32)} ${dtype}  ${fmtMs(row.ms).padStart(8)} ms  ${perf.padEnd(34)} ${peerTxt}`);
    }
  }
  const result = {
    adapter: { description: info.description, vendor: info.vendor, architecture: info.architecture, device: info.device, features: info.features, limits: info.limits, subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize },
    date: new Date().toISOString(),
    host: await hostRecord(),
    note: argValue(argv, 'note'),
    runs,
    method: 'warm-up, then the median of `runs` runs, each ended by queue.onSubmittedWorkDone() after sleeping 75% of the fastest run so far (Dawn polls on the main thread while it waits, which takes a core from a CPU adapter); the peer is timed the same way; cases run one after the other (for A/B under load see bench/kernels-dev/winograd.ts)',
    cases: rows,
  };
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}kernels-${adapterSlug(ctx)}.json`;
  if (!only) writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  log(only ? '(--only: results not written)' : `wrote ${file}`);
  if (asJson) console.log(JSON.stringify(result));
  ctx.destroy();
}

await main();
