// Real size (issue 5): the SSD-1B and Segmind-Vega UNets built from their real configs
// (architecture.md §1.4, §1.5) with random fp16 weights generated in-process from the key lists (no
// file): exact parameter counts, and one forward at a 16×16 latent with batch 2 on the test adapter
// gives finite output. Opt-in (`pnpm test:real`): each model takes minutes on lavapipe.
import { describe, expect, it } from 'vitest';
import { UNet2DConditionModel } from '@ssd/unet';
import { EXPECTED_PARAMS, syntheticModelSource } from '../../../bench/lib/random-model.js';
import { stats, unetInputs } from '../../../bench/lib/unet-inputs.js';
import { testContext } from '../../../testing/index.js';

const LATENT = 16;
const BATCH = 2;

describe('UNet2DConditionModel at real size (random weights)', () => {
  for (const arch of ['ssd-1b', 'vega'] as const) {
    it(`${arch}: ${EXPECTED_PARAMS[`${arch}/unet`].toLocaleString('en-US')} parameters; forward at ${LATENT}×${LATENT}, batch ${BATCH} is finite`, async () => {
      const ctx = await testContext();
      const dtype = ctx.f16 ? 'f16' : 'f32';
      const t0 = performance.now();
      const src = await syntheticModelSource(arch, dtype === 'f16' ? 'F16' : 'F32', ['unet']);
      const unet = await UNet2DConditionModel.fromPretrained(src, { context: ctx, dtype, variant: dtype === 'f16' ? 'fp16' : undefined });
      const loadMs = performance.now() - t0;
      try {
        expect(unet.parameterCount).toBe(EXPECTED_PARAMS[`${arch}/unet`]);
        const inputs = unetInputs(ctx, unet, BATCH, LATENT, LATENT, 999);
        await ctx.sync();
        ctx.resetPeak();
        const t1 = performance.now();
        const out = unet.forward(inputs);
        const data = await out.read();
        const forwardMs = performance.now() - t1;
        expect(out.shape).toEqual([BATCH, LATENT, LATENT, 4]);
        const s = stats(data);
        console.log(
          `${arch} ${dtype}: ${unet.parameterCount.toLocaleString('en-US')} params, ${(unet.weightBytes / 2 ** 20).toFixed(0)} MiB of weights; ` +
            `load ${(loadMs / 1000).toFixed(1)} s, forward ${(forwardMs / 1000).toFixed(1)} s, peak GPU ${(ctx.memory.peakBytes / 2 ** 20).toFixed(0)} MiB; ` +
            `output mean ${s.mean.toExponential(2)} std ${s.std.toExponential(2)} max|x| ${s.maxAbs.toExponential(2)} (${ctx.info.description})`,
        );
        expect(s.nonFinite).toBe(0);
        expect(s.std).toBeGreaterThan(0);
        out.dispose();
        inputs.dispose();
      } finally {
        unet.dispose();
        ctx.trim();
      }
    });
  }
});
