// pnpm bench:kernels — kernel microbenchmarks: matmul, conv 3×3, attention and groupNorm at SDXL
// shapes, f32 and f16, ms / GFLOP/s (GB/s for memory-bound ops) and the fraction of the adapter's
// peak where known, against tfjs-backend-webgpu on the same adapter. Writes
// bench/results/kernels-<adapter>.json; `--only matmul,conv` picks cases, `--json` prints one JSON
// object as the last line of stdout, `--runs N` (default 5), `--no-peer` skips tfjs.
import { writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createContext, type GpuContext, type Tensor } from '@ssd/tensor';
import { attention, conv2d, groupNorm, linear } from '@ssd/kernels';
import { loadTfjs, type Peer } from './lib/tfjs.js';
import { adapterSlug, argValue, fmtMs, peakGflops, timeGpu } from './lib/timing.js';

type DType = 'f32' | 'f16';

interface Case {
  op: 'matmul' | 'conv' | 'attention' | 'groupNorm';
  shape: string;
  /** FLOP per run (compute-bound ops) or bytes moved (memory-bound ones). */
  flop?: number;
  bytes?: number;
  make(ctx: GpuContext, dtype: DType): { run(): Tensor; dispose(): void };
  /** The peer's version; `scale` multiplies its time when it ran a smaller problem (then `note` says so). */
  peer?(p: Peer): { run(): { dispose(): void }; dispose(): void; scale?: number };
  note?: string;
}

interface Row {
  op: string;
  shape: string;
  dtype: DType;
  ms: number;
  gflops?: number;
  gbps?: number;
  fractionOfPeak?: number;
  copyGbps?: number;
  peer?: { name: string; ms: number; gflops?: number; ratio: number } | { name: string; error: string };
  note?: string;
}

const argv = process.argv.slice(2);
const only = argValue(argv, 'only')?.split(',');
const runs = Number(argValue(argv, 'runs') ?? 5);
const asJson = argv.includes('--json');
const wantPeer = !argv.includes('--no-peer');
const dtypes = (argValue(argv, 'dtype')?.split(',') ?? ['f32', 'f16']) as DType[];
const peakOverride = argValue(argv, 'peak-gflops') ? Number(argValue(argv, 'peak-gflops')) : undefined;

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}

function matmulCase(m: number, k: number, n: number): Case {
  return {
    op: 'matmul',
    shape: `${m}×${k}×${n}`,
    flop: 2 * m * k * n,
    make(ctx, dtype) {
      const x = ctx.fromData(rand(m * k, 1), [m, k], dtype);
      const w = ctx.fromData(rand(n * k, 2).map((v) => v / Math.sqrt(k)), [n, k], dtype);
      return { run: () => linear(x, w), dispose: () => (x.dispose(), w.dispose()) };
    },
    peer({ tf }) {
      const a = tf.randomUniform([m, k]);
      const b = tf.randomUniform([n, k]);
      return { run: () => tf.matMul(a, b, false, true), dispose: () => (a.dispose(), b.dispose()) };
    },
  };
}

function convCase(h: number, w: number, cin: number, cout: number): Case {
  return {
    op: 'conv',
    shape: `${h}×${w}×${cin}→${cout} 3×3`,
    flop: 2 * h * w * cin * cout * 9,
    make(ctx, dtype) {
      const x = ctx.fromData(rand(h * w * cin, 3), [1, h, w, cin], dtype);
      // conv2d's own weight layout (OHWI); the values do not matter for timing
      const wt = ctx.fromData(rand(cout * 9 * cin, 4).map((v) => v / Math.sqrt(9 * cin)), [cout, 3, 3, cin], dtype);
      return { run: () => conv2d(x, wt, { padding: 1 }), dispose: () => (x.dispose(), wt.dispose()) };
    },
    peer({ tf }) {
      const x = tf.randomUniform([1, h, w, cin]);
      const f = tf.randomUniform([3, 3, cin, cout]);
      return { run: () => tf.conv2d(x as never, f as never, 1, 'same'), dispose: () => (x.dispose(), f.dispose()) };
    },
  };
}

function attentionCase(nq: number, nk: number, heads: number, d: number, peerTokens?: number): Case {
  const c = heads * d;
  return {
    op: 'attention',
    shape: `${nq}×${nk} keys, ${heads}×${d}${nq === nk ? ' self' : ' cross'}`,
    flop: 4 * heads * nq * nk * d,
    note: peerTokens && peerTokens !== nq ? `peer measured at ${peerTokens} tokens (its N×N scores exceed a binding at ${nq}) and scaled by FLOP` : undefined,
    make(ctx, dtype) {
      const q = ctx.fromData(rand(nq * c, 5), [1, nq, c], dtype);
      const k = ctx.fromData(rand(nk * c, 6), [1, nk, c], dtype);
      const v = ctx.fromData(rand(nk * c, 7), [1, nk, c], dtype);
      return { run: () => attention(q, k, v, { heads }), dispose: () => (q.dispose(), k.dispose(), v.dispose()) };
    },
    peer({ tf }) {
      const pq = peerTokens ?? nq;
      const pk = nq === nk ? pq : nk;
      const q = tf.randomUniform([heads, pq, d]);
      const k = tf.randomUniform([heads, pk, d]);
      const v = tf.randomUniform([heads, pk, d]);
      // the unfused graph: scores, softmax, weighted sum
      return {
        run: () => tf.tidy(() => tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d))), v)),
        dispose: () => (q.dispose(), k.dispose(), v.dispose()),
        scale: (nq * nk) / (pq * pk),
      };
    },
  };
}

function groupNormCase(b: number, h: number, w: number, c: number): Case {
  return {
    op: 'groupNorm',
    shape: `${b}×${h}×${w}×${c} 32 groups`,
    bytes: 0, // set per dtype below
    make(ctx, dtype) {
      const x = ctx.fromData(rand(b * h * w * c, 8), [b, h, w, c], dtype);
      const g = ctx.fromData(rand(c, 9), [c], dtype);
      const be = ctx.fromData(rand(c, 10), [c], dtype);
      return { run: () => groupNorm(x, g, be, { groups: 32, eps: 1e-5, silu: true }), dispose: () => (x.dispose(), g.dispose(), be.dispose()) };
    },
  };
}

const CASES: Case[] = [
  matmulCase(1024, 640, 640),
  matmulCase(4096, 640, 640),
  matmulCase(1024, 1280, 5120),
  matmulCase(4096, 640, 5120),
  matmulCase(77, 2048, 1280),
  convCase(32, 32, 320, 320),
  convCase(32, 32, 640, 640),
  convCase(64, 64, 128, 128),
  convCase(64, 64, 320, 320),
  attentionCase(4096, 4096, 10, 64, 1024),
  attentionCase(1024, 1024, 20, 64),
  attentionCase(1024, 77, 20, 64),
  groupNormCase(2, 32, 32, 640),
  groupNormCase(2, 64, 64, 320),
];

async function copyGbps(ctx: GpuContext, bytes: number): Promise<number> {
  const a = ctx.empty([bytes / 4], 'f32');
  const b = ctx.empty([bytes / 4], 'f32');
  const t = await timeGpu(ctx, () => ctx.copyBuffer(a.buffer, 0, b.buffer, 0, bytes), runs);
  a.dispose();
  b.dispose();
  return (2 * bytes) / (t.ms / 1000) / 1e9;
}

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
      const inst = c.make(ctx, dtype);
      const t = await timeGpu(ctx, () => inst.run(), runs);
      inst.dispose();
      const row: Row = { op: c.op, shape: c.shape, dtype, ms: t.ms, note: c.note };
      const peak = peakGflops(info.description, dtype, peakOverride);
      if (c.flop) {
        row.gflops = c.flop / (t.ms / 1000) / 1e9;
        if (peak) row.fractionOfPeak = row.gflops / peak;
      } else {
        const [b, h, w, ch] = c.shape.split(' ')[0].split('×').map(Number);
        const bytes = b * h * w * ch * (dtype === 'f16' ? 2 : 4);
        row.gbps = (2 * bytes) / (t.ms / 1000) / 1e9; // one read and one write of the tensor at least
        row.copyGbps = await copyGbps(ctx, bytes);
      }
      if (peer && c.peer && dtype === 'f32') {
        try {
          const p = c.peer(peer);
          const ms = await peer.time(() => p.run(), runs);
          p.dispose();
          const scaled = ms * (p.scale ?? 1);
          row.peer = { name: 'tfjs-webgpu', ms: scaled, gflops: c.flop ? c.flop / (scaled / 1000) / 1e9 : undefined, ratio: scaled / t.ms };
        } catch (e) {
          row.peer = { name: 'tfjs-webgpu', error: (e as Error).message.split('\n')[0] };
        }
      }
      rows.push(row);
      const perf = row.gflops !== undefined ? `${row.gflops.toFixed(1)} GFLOP/s${row.fractionOfPeak ? ` (${(row.fractionOfPeak * 100).toFixed(1)}% of peak)` : ''}` : `${row.gbps!.toFixed(2)} GB/s (copy ${row.copyGbps!.toFixed(2)} GB/s)`;
      const peerTxt = row.peer ? ('error' in row.peer ? `tfjs: ${row.peer.error}` : `tfjs ${fmtMs(row.peer.ms)} ms → ours ${row.peer.ratio.toFixed(1)}× faster`) : '';
      log(`${c.op.padEnd(10)} ${c.shape.padEnd(32)} ${dtype}  ${fmtMs(t.ms).padStart(8)} ms  ${perf.padEnd(34)} ${peerTxt}`);
    }
  }
  const result = {
    adapter: { description: info.description, vendor: info.vendor, architecture: info.architecture, device: info.device, features: info.features, limits: info.limits, subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize },
    date: new Date().toISOString(),
    runs,
    method: 'warm-up, then the median of `runs` runs, each ended by queue.onSubmittedWorkDone()',
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
