// Both text encoders loaded from the fixture single-file checkpoint (CLIP-L as stored, OpenCLIP bigG
// remapped: fused in_proj split into q/k/v) compute bit-identically to the folder's fp16 variant.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FolderSource, readModelIndex, SingleFileSource } from '@ssd/tensor';
import { CLIPTextModel, CLIPTokenizer, loadSdxlTokenizer, withSdxlTokenizers } from '@ssd/clip';
import { fixturesDir, hasFixtures, testContext } from '../../../testing/index.js';

const FILE = 'models/single-file/tiny-ssd1b-sgm.fp16.safetensors';

describe.skipIf(!hasFixtures(FILE))('text encoders from a single-file checkpoint', () => {
  it('hidden states, pooled output and projection equal the folder fp16 variant bit for bit', async () => {
    const ctx = await testContext();
    const sf = await SingleFileSource.open(join(fixturesDir, FILE));
    const folder = new FolderSource(join(fixturesDir, 'models/tiny-ssd1b'));
    for (const [sub, tok] of [['text_encoder', 'tokenizer'], ['text_encoder_2', 'tokenizer_2']] as const) {
      const ids = [(await loadSdxlTokenizer(tok)).encode('a watercolor fox, in the snow!').ids];
      const a = await CLIPTextModel.fromPretrained(sf, sub, { context: ctx, dtype: 'f32' });
      const b = await CLIPTextModel.fromPretrained(folder, sub, { context: ctx, dtype: 'f32', variant: 'fp16' });
      expect(a.withProjection).toBe(sub === 'text_encoder_2');
      const [oa, ob] = [a.encode(ids, { hiddenStates: [-2], pooled: true }), b.encode(ids, { hiddenStates: [-2], pooled: true })];
      const pairs = [[oa.hiddenStates.get(-2)!, ob.hiddenStates.get(-2)!], [oa.pooled!, ob.pooled!], ...(oa.textEmbeds ? [[oa.textEmbeds, ob.textEmbeds!]] : [])];
      for (const [x, y] of pairs) {
        const [gx, gy] = [await x.read(), await y.read()];
        expect(gx.every(Number.isFinite), sub).toBe(true);
        expect(Buffer.from(gx.buffer).equals(Buffer.from(gy.buffer)), sub).toBe(true);
      }
      oa.dispose();
      ob.dispose();
      a.dispose();
      b.dispose();
    }
    await sf.close();
  });
});

describe.skipIf(!hasFixtures(FILE))('a single file completed into a pipeline folder', () => {
  it('withSdxlTokenizers: model_index, configs and tensors from the file, tokenizers from @ssd/clip', async () => {
    const sf = await SingleFileSource.open(join(fixturesDir, FILE));
    const model = withSdxlTokenizers(sf);
    const index = await readModelIndex(model);
    expect(Object.keys(index.components).sort()).toEqual(['scheduler', 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'unet', 'vae']);
    for (const name of ['tokenizer', 'tokenizer_2']) {
      const t = await CLIPTokenizer.fromPretrained(model, name);
      const ref = await CLIPTokenizer.fromPretrained(join(fixturesDir, 'models/tiny-ssd1b'), name);
      expect(t.encode('hello there!').ids).toEqual(ref.encode('hello there!').ids);
    }
    const unet = await model.openTensors('unet');
    expect(unet.get('conv_in.weight')!.stored).toBe('model.diffusion_model.input_blocks.0.0.weight');
    await unet.close();
    await sf.close();
  });
});
