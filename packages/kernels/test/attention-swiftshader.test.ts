// The subgroup attention kernel on a second driver: SwiftShader (Chromium's CPU Vulkan, 4-wide
// subgroups, no f16) against float64 and against lavapipe (8-wide subgroups). ORT's flash attention
// assumed subgroups wider than 8 and was wrong on lavapipe; this checks that ours is right at 4 too,
// both at the adapter's size (the broadcast path) and built for 8 lanes (which must fall back).
// Dawn's adapter filter is case-sensitive ('SwiftShader'). Needs Debian's chromium package (/usr/lib/chromium/vk_swiftshader_icd.json); skipped without it.
import { existsSync } from 'node:fs';
const ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const hasIcd = existsSync(ICD);
// must be set before the first Vulkan instance of this process exists
if (hasIcd) process.env.VK_ADD_DRIVER_FILES = ICD;

import { describe, expect, it } from 'vitest';
import { createContext, type GpuContext } from '@ssd/tensor';
import { attention, type AttentionOptions } from '../src/attention.js';
import { relL2 } from '../../../testing/index.js';
import { attentionRef } from './reference/attention.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const SKIP = `SwiftShader's Vulkan ICD is not installed (${ICD}; apt-get install chromium)`;

describe('attention on SwiftShader (subgroup size 4) and lavapipe (8)', () => {
  let swift: GpuContext | undefined;
  let lava: GpuContext | undefined;

  const B = 2;
  const Nq = 37;
  const Nk = 19;
  const H = 2;
  const D = 24;
  const cases: { name: string; opts: (ctx: GpuContext) => Omit<AttentionOptions, 'heads'> }[] = [
    { name: 'subgroups at the adapter size', opts: (ctx) => ({ force: 'subgroups', tile: { rows: 1, lanes: ctx.info.subgroupMinSize } }) },
    { name: 'subgroups built for 8 lanes', opts: () => ({ force: 'subgroups', tile: { rows: 1, lanes: 8 } }) },
    { name: 'portable', opts: () => ({ force: 'portable', tile: { rows: 1, keyBlock: 8 } }) },
  ];

  for (const c of cases) {
    it(`attention f32 ${c.name} B=${B} Nq=${Nq} Nk=${Nk} H=${H} D=${D} causal`, async ({ skip }) => {
      if (!hasIcd) skip(SKIP);
      swift ??= await createContext({ adapter: 'SwiftShader' });
      lava ??= await createContext({ adapter: 'llvmpipe' });
      if (!/swiftshader/i.test(`${swift.info.architecture} ${swift.info.description}`)) skip(`no SwiftShader adapter (got ${swift.info.description})`);
      if (!swift.subgroups) skip('SwiftShader offers no subgroups here');
      const results: Float32Array[] = [];
      for (const ctx of [swift, lava]) {
        const [q, k, v] = (['q', 'k', 'v'] as const).map((n) => input(ctx, [B, n === 'q' ? Nq : Nk, H * D], 'f32', `swiftshader ${n}`));
        const r = await runPoisoned(ctx, B * Nq * H * D, 'f32', () => attention(q.t, k.t, v.t, { heads: H, causal: true, ...c.opts(ctx) }));
        const ref = attentionRef(...([q, k, v].map((x) => ({ data: x.v, stride: H * D, offset: 0 })) as [never, never, never]), B, Nq, Nk, H, D, 1 / Math.sqrt(D), true);
        expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance('f32'));
        expect(r.tailIntact).toBe(true);
        results.push(r.values as Float32Array);
        for (const t of [q.t, k.t, v.t, r.out]) t.dispose();
      }
      expect(relL2(results[0], results[1])).toBeLessThanOrEqual(tolerance('f32'));
    });
  }

  it('the two adapters are the ones named', async ({ skip }) => {
    if (!hasIcd) skip(SKIP);
    swift ??= await createContext({ adapter: 'SwiftShader' });
    lava ??= await createContext({ adapter: 'llvmpipe' });
    expect(swift.info.subgroupMinSize).toBe(4);
    expect(lava.info.subgroupMinSize).toBe(8);
  });
});
