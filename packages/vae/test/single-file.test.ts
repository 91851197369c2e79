// The VAE loaded from the fixture single-file checkpoint (LDM names, mid-attention q/k/v/proj_out as
// 1×1 convs) decodes bit-identically to the folder's fp16 variant.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FolderSource, SingleFileSource } from '@ssd/tensor';
import { AutoencoderKL, loadAutoencoder } from '@ssd/vae';
import { fixturesDir, hasFixtures, randomArray, testContext } from '../../../testing/index.js';

const FILE = 'models/single-file/tiny-ssd1b-sgm.fp16.safetensors';

describe.skipIf(!hasFixtures(FILE))('AutoencoderKL from a single-file checkpoint', () => {
  it('decodes bit-identically to the folder fp16 variant', async () => {
    const ctx = await testContext();
    const sf = await SingleFileSource.open(join(fixturesDir, FILE));
    const a = await loadAutoencoder(sf, { context: ctx, dtype: 'f32', parts: 'decoder' });
    expect(a).toBeInstanceOf(AutoencoderKL);
    const b = await AutoencoderKL.fromPretrained(new FolderSource(join(fixturesDir, 'models/tiny-ssd1b')), { context: ctx, dtype: 'f32', variant: 'fp16', parts: 'decoder' });
    const latents = ctx.fromData(randomArray(4 * 8 * 8, 'sf-vae'), [1, 8, 8, 4]); // NHWC
    const [da, db] = [await a.decode(latents), await b.decode(latents)];
    const [ga, gb] = [await da.sample.read(), await db.sample.read()];
    expect(ga.every(Number.isFinite)).toBe(true);
    expect(Buffer.from(ga.buffer).equals(Buffer.from(gb.buffer))).toBe(true);
    for (const t of [latents, da.sample, db.sample]) t.dispose();
    a.dispose();
    b.dispose();
    await sf.close();
  });
});
