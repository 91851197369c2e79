// Timing helpers for the benchmarks: a warm-up (which also compiles the pipelines), then the median
// of N runs, each ended by a completed queue; and the adapter-peak table for "fraction of peak".
import type { GpuContext } from '@ssd/tensor';

export interface Timing {
  ms: number;
  runs: number[];
}

/**
 * Runs `fn` once to warm up, then `runs` times; each run ends when the GPU queue is idle. The wait
 * sleeps through 75% of the fastest run so far first (`ctx.sync({ expectedMs })`, as the pipeline's
 * step loop does): Dawn's completion polling in Node otherwise takes a core from a CPU adapter.
 */
export async function timeGpu(ctx: GpuContext, fn: () => { dispose(): void } | void, runs = 5): Promise<Timing> {
  let best = 0;
  const once = async () => {
    const t0 = performance.now();
    const out = fn();
    await ctx.sync({ expectedMs: best });
    const ms = performance.now() - t0;
    out?.dispose();
    return ms;
  };
  await once(); // warm-up: compiles; its time is not an estimate
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const ms = await once();
    times.push(ms);
    best = Math.min(...times);
  }
  return { ms: median(times), runs: times };
}

/**
 * timeGpu for several functions run in turn (a, b, a, b, …), so a shared machine's load falls on each
 * alike and their ratio holds even when the absolute times do not (A/B comparisons).
 */
export async function timeGpuInterleaved(ctx: GpuContext, fns: readonly (() => { dispose(): void } | void)[], runs = 5): Promise<Timing[]> {
  const best = fns.map(() => 0);
  const once = async (i: number) => {
    const t0 = performance.now();
    const out = fns[i]();
    await ctx.sync({ expectedMs: best[i] });
    const ms = performance.now() - t0;
    out?.dispose();
    return ms;
  };
  for (let i = 0; i < fns.length; i++) await once(i); // warm-ups: compiles
  const times = fns.map(() => [] as number[]);
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < fns.length; i++) {
      times[i].push(await once(i));
      best[i] = Math.min(...times[i]);
    }
  }
  return times.map((t) => ({ ms: median(t), runs: t }));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Known peak GFLOP/s (f32 FMA, non-tensor-core) by adapter; null where unknown. */
export function peakGflops(description: string, dtype: 'f32' | 'f16', override?: number): number | null {
  if (override) return override;
  const d = description.toLowerCase();
  // this project's CI machine: 2 cores, AVX2 FMA (measured/quoted in the kernels issue)
  if (/llvmpipe/.test(d)) return 290;
  if (/h100/.test(d)) return dtype === 'f16' ? 133_800 : 66_900;
  if (/h200/.test(d)) return dtype === 'f16' ? 133_800 : 66_900;
  if (/a100/.test(d)) return dtype === 'f16' ? 78_000 : 19_500;
  return null;
}

export function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

/** Parses --name value / --flag arguments. */
export function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

export function adapterSlug(ctx: GpuContext): string {
  return (ctx.info.description || ctx.info.vendor || 'adapter').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 48);
}

/**
 * The adapter's name in result files: $SSD_RESULT_SLUG when set (bench/gpu/run.sh sets the GPU's name
 * from nvidia-smi), 'lavapipe' / 'swiftshader' for the CPU drivers, else the device name (Vulkan
 * adapters' descriptions name the driver, not the GPU), else adapterSlug.
 */
export function resultSlug(ctx: GpuContext): string {
  if (process.env.SSD_RESULT_SLUG) return process.env.SSD_RESULT_SLUG;
  const d = `${ctx.info.description} ${ctx.info.device}`.toLowerCase();
  if (d.includes('llvmpipe')) return 'lavapipe';
  if (d.includes('swiftshader')) return 'swiftshader';
  const device = (ctx.info.device || '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 48);
  return device || adapterSlug(ctx);
}

/** What the result files record about the adapter. */
export function adapterRecord(ctx: GpuContext): Record<string, unknown> {
  const i = ctx.info;
  return { description: i.description, vendor: i.vendor, architecture: i.architecture, device: i.device, features: i.features, maxStorageBufferBindingSize: ctx.limits.maxStorageBufferBindingSize };
}

/** The host while a benchmark ran: CPU count and load average (other processes share CI-like machines). */
export async function hostRecord(): Promise<Record<string, unknown>> {
  const os = await import('node:os');
  return { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))), totalMemBytes: os.totalmem(), node: process.version };
}

export function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

/** Peak resident set size of this process so far, bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}
