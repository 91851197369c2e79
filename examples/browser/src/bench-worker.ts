// The kernel-benchmark worker: the same cases and measurement as `pnpm bench:kernels`
// (bench/lib/kernel-cases.ts), on this browser's adapter, one row per message. Stopping terminates
// the worker (a running GPU job cannot be interrupted otherwise).
import { createContext } from '@ssd/tensor';
import { CASES, formatPerf, measureCase, SMOKE_CASES, type DType, type Row } from '../../../bench/lib/kernel-cases.js';

export type BenchRequest = { type: 'run'; set: 'full' | 'smoke'; dtypes: DType[]; runs: number; only?: string[] };
export type BenchMessage =
  | { type: 'start'; adapter: { description: string; features: string[]; f16: boolean }; cases: number }
  | { type: 'row'; row: Row; perf: string }
  | { type: 'skip'; op: string; shape: string; dtype: DType; reason: string }
  | { type: 'done'; ms: number }
  | { type: 'error'; message: string };

const scope = self as unknown as { postMessage(m: BenchMessage): void; addEventListener(t: 'message', fn: (e: MessageEvent<BenchRequest>) => void): void };

scope.addEventListener('message', async (e) => {
  const req = e.data;
  if (req.type !== 'run') return;
  try {
    const t0 = performance.now();
    const ctx = await createContext({ label: 'bench' });
    const cases = (req.set === 'full' ? CASES : SMOKE_CASES).filter((c) => !req.only || req.only.includes(c.op));
    const i = ctx.info;
    scope.postMessage({ type: 'start', adapter: { description: i.description || [i.vendor, i.architecture].filter(Boolean).join(' '), features: i.features, f16: ctx.f16 }, cases: cases.length * req.dtypes.length });
    for (const c of cases) {
      for (const dtype of req.dtypes) {
        if (dtype === 'f16' && !ctx.f16) {
          scope.postMessage({ type: 'skip', op: c.op, shape: c.shape, dtype, reason: 'no shader-f16 on this adapter' });
          continue;
        }
        if (c.dtypes && !c.dtypes.includes(dtype)) {
          scope.postMessage({ type: 'skip', op: c.op, shape: c.shape, dtype, reason: c.dtypeNote ?? `${dtype} is not offered` });
          continue;
        }
        const row = await measureCase(ctx, c, dtype, { runs: req.runs });
        scope.postMessage({ type: 'row', row, perf: formatPerf(row) });
      }
    }
    ctx.destroy();
    scope.postMessage({ type: 'done', ms: performance.now() - t0 });
  } catch (err) {
    scope.postMessage({ type: 'error', message: (err as Error).message ?? String(err) });
  }
});
