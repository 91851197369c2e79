// The UNet loaded from the fixture single-file checkpoint (SGM names, f16) computes exactly what the
// folder's fp16 variant computes: same weights after the name mapping, same kernels. A key the mapping
// cannot place is reported by the weight store under its SGM name.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BlobSource, CheckpointError, FolderSource, NodeFileSource, SafetensorsFile, SingleFileSource, encodeSafetensors } from '@ssd/tensor';
import { UNet2DConditionModel } from '@ssd/unet';
import { fixturesDir, hasFixtures, testContext } from '../../../testing/index.js';

const FILE = 'models/single-file/tiny-ssd1b-sgm.fp16.safetensors';

describe.skipIf(!hasFixtures(FILE, 'reference/unet_tiny-ssd1b.safetensors'))('UNet2DConditionModel from a single-file checkpoint', () => {
  it('computes bit-identically to the folder fp16 variant (f32 compute)', async () => {
    const ctx = await testContext();
    const sf = await SingleFileSource.open(join(fixturesDir, FILE));
    const fromFile = await UNet2DConditionModel.fromPretrained(sf, { context: ctx, dtype: 'f32' });
    const fromFolder = await UNet2DConditionModel.fromPretrained(new FolderSource(join(fixturesDir, 'models/tiny-ssd1b')), { context: ctx, dtype: 'f32', variant: 'fp16' });
    expect(fromFile.parameterCount).toBe(fromFolder.parameterCount);
    const ref = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, 'reference/unet_tiny-ssd1b.safetensors')));
    const meta = JSON.parse(readFileSync(join(fixturesDir, 'reference/unet_tiny-ssd1b.json'), 'utf8')) as { cases: { name: string }[] };
    const c = meta.cases[0].name;
    const t = (k: string) => ref.readFloat32(`${c}.${k}`).then((d) => ctx.fromData(d, ref.info(`${c}.${k}`).shape));
    const [sample, ehs, te] = [await t('sample'), await t('encoder_hidden_states'), await t('text_embeds')];
    const ts = await ref.readFloat32(`${c}.timestep`);
    const ids = await ref.readFloat32(`${c}.time_ids`);
    const rows = Array.from({ length: sample.shape[0] }, (_, k) => [...ids.subarray(k * 6, k * 6 + 6)]);
    const run = (u: UNet2DConditionModel) => u.forwardNCHW({ sample, timestep: ts.length === 1 ? ts[0] : [...ts], encoderHiddenStates: ehs, textEmbeds: te, timeIds: rows });
    const [a, b] = [run(fromFile), run(fromFolder)];
    const [ga, gb] = [await a.read(), await b.read()];
    expect(ga.every((v) => Number.isFinite(v))).toBe(true);
    expect(Buffer.from(ga.buffer).equals(Buffer.from(gb.buffer))).toBe(true);
    for (const x of [sample, ehs, te, a, b]) x.dispose();
    fromFile.dispose();
    fromFolder.dispose();
    await ref.source.close();
  });

  it('a key the mapping cannot place is reported under its SGM name', async () => {
    const ctx = await testContext();
    const st = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, FILE)));
    const tensors: Record<string, { dtype: 'F16'; shape: number[]; data: Uint16Array }> = {};
    for (const k of st.keys()) {
      if (k.startsWith('model.diffusion_model.')) tensors[k] = { dtype: 'F16', shape: [...st.info(k).shape], data: (await st.read(k)) as Uint16Array };
    }
    tensors['model.diffusion_model.middle_block.0.extra.weight'] = { dtype: 'F16', shape: [2], data: new Uint16Array(2) };
    await st.source.close();
    const sf = await SingleFileSource.open(new BlobSource(new Blob([encodeSafetensors(tensors) as BlobPart]), 'extra.safetensors'), { base: new FolderSource(join(fixturesDir, 'models/tiny-ssd1b')) });
    const err = await UNet2DConditionModel.fromPretrained(sf, { context: ctx, dtype: 'f32' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(/extra\.safetensors \(unet\): the weights do not match .*\n {2}unexpected: mid_block\.resnets\.0\.extra\.weight \(model\.diffusion_model\.middle_block\.0\.extra\.weight\) \(shape \[2\]\)/);
    expect(ctx.memory.liveBytes).toBe(0);
  });
});
