// A timestamp profile (ctx.startProfiling … stopProfiling) summed by layer kind and kernel family, with
// the achieved GFLOP/s of the kinds whose work is counted, and the wall time the dispatches do not
// cover (submission gaps, host work between them: tiling's crops, statistics and readbacks).
import type { DispatchTime } from '@ssd/tensor';
import { fmtMs } from './timing.js';
import { labelFamily, layerKind, type LayerKind } from './unet-flops.js';

export const KINDS: LayerKind[] = ['matmul', 'conv', 'attention', 'norm', 'other'];

export interface KindTotal {
  ms: number;
  dispatches: number;
  share: number;
  gflop?: number;
  gflops?: number;
}

export interface ProfileSummary {
  method: string;
  dispatches: number;
  gpuMs: number;
  /** Wall time of the profiled run minus the dispatches' GPU time (when the wall time is given). */
  outsideDispatchesMs?: number;
  kinds: Record<LayerKind, KindTotal>;
  families: Record<string, { kind: LayerKind; ms: number; dispatches: number }>;
}

/** Sums `dispatches` by kind and family; `flop` is the direct-equivalent work of each counted kind. */
export function summarizeProfile(dispatches: DispatchTime[], flop: Partial<Record<LayerKind, number>>, wallMs?: number): ProfileSummary {
  const byKind = Object.fromEntries(KINDS.map((k) => [k, { ms: 0, dispatches: 0 }])) as Record<LayerKind, { ms: number; dispatches: number }>;
  const byFamily = new Map<string, { kind: LayerKind; ms: number; dispatches: number }>();
  for (const d of dispatches) {
    const kind = layerKind(d.label);
    byKind[kind].ms += d.ms;
    byKind[kind].dispatches++;
    const fam = labelFamily(d.label);
    const e = byFamily.get(fam) ?? { kind, ms: 0, dispatches: 0 };
    e.ms += d.ms;
    e.dispatches++;
    byFamily.set(fam, e);
  }
  const gpuMs = dispatches.reduce((a, d) => a + d.ms, 0);
  const kinds = Object.fromEntries(
    KINDS.map((k) => {
      const f = flop[k];
      const e: KindTotal = { ...byKind[k], share: byKind[k].ms / gpuMs };
      if (f !== undefined) {
        e.gflop = f / 1e9;
        if (byKind[k].ms > 0) e.gflops = f / (byKind[k].ms / 1000) / 1e9;
      }
      return [k, e];
    }),
  ) as Record<LayerKind, KindTotal>;
  return {
    method: 'every dispatch in its own timestamped compute pass (ctx.startProfiling); the sum of dispatch times excludes submission gaps and host work',
    dispatches: dispatches.length,
    gpuMs,
    outsideDispatchesMs: wallMs !== undefined ? wallMs - gpuMs : undefined,
    kinds,
    families: Object.fromEntries([...byFamily].sort((a, b) => b[1].ms - a[1].ms).map(([f, e]) => [f, e])),
  };
}

/** The summary as log lines. */
export function profileLines(p: ProfileSummary): string[] {
  const lines = [`profile: ${p.dispatches} dispatches, ${fmtMs(p.gpuMs)} ms of GPU time${p.outsideDispatchesMs !== undefined ? `, ${fmtMs(p.outsideDispatchesMs)} ms of the wall time outside dispatches` : ''}`];
  for (const k of KINDS) {
    const e = p.kinds[k];
    lines.push(`  ${k.padEnd(10)} ${fmtMs(e.ms).padStart(9)} ms ${(e.share * 100).toFixed(1).padStart(5)}%  ${String(e.dispatches).padStart(5)} dispatches${e.gflops !== undefined ? `  ${e.gflops.toFixed(1)} GFLOP/s` : ''}`);
  }
  for (const [f, e] of Object.entries(p.families).slice(0, 8)) lines.push(`    ${f.padEnd(28)} ${fmtMs(e.ms).padStart(9)} ms  ${String(e.dispatches).padStart(5)} dispatches`);
  return lines;
}
