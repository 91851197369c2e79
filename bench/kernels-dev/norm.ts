// Timing of groupNorm (and its memory-bound neighbours) on the current adapter against a plain copy of
// the same bytes: ctx.copyBuffer (the driver's memcpy) and a vec4 copy kernel (the best a compute
// pass moves on this adapter). Each run is one submit ended by a completed queue; the candidates of a
// case are timed round-robin (so a noisy neighbour hits them alike) after one warm-up each, and the
// median and the minimum of REPS runs are reported.
// GB/s counts the bytes a perfect kernel moves: read x once + write y once (2 × tensor bytes; 3 × for add).
// Run: cd /work/main && node --conditions=source --import tsx bench/kernels-dev/norm.ts [--reps 15] [--only gn]
import { createContext, foldWorkgroups, prologue, type DType, type GpuContext, type Tensor } from '@ssd/tensor';
import { groupNorm } from '../../packages/kernels/src/group-norm.js';
import { layerNorm } from '../../packages/kernels/src/layer-norm.js';
import { add, silu } from '../../packages/kernels/src/elementwise.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const REPS = Number(arg('--reps') ?? 15);
const ONLY = arg('--only');

/** A vec4 copy kernel: each invocation moves 16 vec4s, strided by the workgroup. */
function copyKernel(ctx: GpuContext, x: Tensor, y: Tensor): void {
  const spec = Object.freeze({ dtype: x.dtype });
  const pipeline = ctx.kernel('bench.copy', spec, (s) =>
    prologue({ dtype: s.dtype, uniforms: [['n', 'u32'], ['per', 'u32']], consts: { WG: 64 } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<S4>;
@group(0) @binding(2) var<storage, read_write> y: array<S4>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = linear_workgroup(wid, nwg) * WG * u.per + lid;
  for (var k = 0u; k < u.per; k++) { let i = base + k * WG; if (i < u.n) { y[i] = x[i]; } }
}`);
  const n = x.size / 4;
  ctx.dispatch({
    pipeline,
    bindings: [x, y],
    uniforms: { layout: [['n', 'u32'], ['per', 'u32']], values: { n, per: 16 } },
    workgroups: foldWorkgroups(Math.ceil(n / 1024), ctx.limits.maxComputeWorkgroupsPerDimension),
    label: 'bench.copy',
  });
}

/** Round-robin timing of named candidates: [median, min] ms of each. */
async function timeAll(ctx: GpuContext, runs: Record<string, () => Tensor | void>): Promise<Record<string, [number, number]>> {
  const once = async (run: () => Tensor | void) => {
    const t0 = performance.now();
    const t = run();
    await ctx.sync();
    const ms = performance.now() - t0;
    if (t) t.dispose();
    return ms;
  };
  const samples: Record<string, number[]> = {};
  for (const [k, run] of Object.entries(runs)) {
    await once(run);
    samples[k] = [];
  }
  for (let i = 0; i < REPS; i++) for (const [k, run] of Object.entries(runs)) samples[k].push(await once(run));
  const out: Record<string, [number, number]> = {};
  for (const [k, s] of Object.entries(samples)) {
    s.sort((a, b) => a - b);
    out[k] = [s[s.length >> 1], s[0]];
  }
  return out;
}

const ctx = await createContext();
console.log(`adapter: ${ctx.info.description} (${ctx.info.vendor} ${ctx.info.architecture}); ${REPS} runs each, median (min) ms`);
const header = ['case', 'dtype', 'MB', 'copyBuffer', 'copy kernel', 'op', 'op GB/s', 'op/copyBuffer', 'op/copy kernel'];
const rows: string[][] = [header];
const fmt = ([med, min]: [number, number]) => `${med.toFixed(2)} (${min.toFixed(2)})`;
const dtypes: DType[] = ctx.f16 ? ['f32', 'f16'] : ['f32'];
const shapes: [string, number[]][] = [
  ['32×32×640', [2, 32, 32, 640]],
  ['64×64×320', [2, 64, 64, 320]],
  ['128×128×128', [1, 128, 128, 128]],
];
for (const dtype of dtypes) {
  for (const [name, shape] of shapes) {
    const C = shape[shape.length - 1];
    const n = shape.reduce((a, d) => a * d, 1);
    const x = ctx.fromData(Float32Array.from({ length: n }, (_, i) => Math.sin(i) + 0.1), shape, dtype);
    const w = ctx.fromData(new Float32Array(C).fill(1.1), [C], dtype);
    const b = ctx.fromData(new Float32Array(C).fill(0.1), [C], dtype);
    const y = ctx.empty(shape, dtype);
    const tokens = x.reshape([shape[0], -1, C]);
    const bytes = x.byteSize;
    const ops: Record<string, [() => Tensor, number]> = {
      [`groupNorm B=${shape[0]} ${name} G=32 silu`]: [() => groupNorm(x, w, b, { groups: 32, eps: 1e-5, silu: true }), 2],
      [`groupNorm B=${shape[0]} ${name} G=32`]: [() => groupNorm(x, w, b, { groups: 32, eps: 1e-5 }), 2],
      [`layerNorm [${shape[0]}, ${n / shape[0] / C}, ${C}]`]: [() => layerNorm(tokens, w, b, { eps: 1e-5 }), 2],
      [`silu ${name}`]: [() => silu(x), 2],
      [`add ${name}`]: [() => add(x, y), 3],
    };
    const wanted = Object.entries(ops).filter(([k]) => !ONLY || k.startsWith(ONLY));
    if (wanted.length === 0) continue;
    const t = await timeAll(ctx, {
      copyBuffer: () => ctx.copyBuffer(x.buffer, 0, y.buffer, 0, bytes),
      copyKernel: () => copyKernel(ctx, x, y),
      ...Object.fromEntries(wanted.map(([k, [run]]) => [k, run])),
    });
    for (const [k, [, traffic]] of wanted) {
      const [med] = t[k];
      rows.push([k, dtype, (bytes / 1e6).toFixed(1), fmt(t.copyBuffer), fmt(t.copyKernel), fmt(t[k]), ((traffic * bytes) / med / 1e6).toFixed(2), (med / t.copyBuffer[0]).toFixed(2), (med / t.copyKernel[0]).toFixed(2)]);
    }
    for (const z of [x, w, b, y, tokens]) z.dispose();
  }
}
const widths = header.map((_, j) => Math.max(...rows.map((r) => r[j].length)));
for (const r of rows) console.log(r.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  '));
ctx.destroy();
