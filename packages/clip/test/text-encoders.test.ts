// CLIPTextModel / CLIPTextModelWithProjection vs transformers (reference/text_encoders.*): every
// hidden state, the final LayerNorm, the pooled EOS row and the projection, in f32 and with the fp16
// weights in f16; tampered weights give a CheckpointError naming the key; each loader returns an
// instance of the class the config names.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, encodeSafetensors, FolderSource, MemorySource, NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { CLIPTextModel, CLIPTextModelWithProjection } from '@ssd/clip';
import { fixturesDir, relL2, testContext } from '../../../testing/index.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
const refPath = join(fixturesDir, 'reference/text_encoders.safetensors');

async function ids(ref: SafetensorsFile, name: string): Promise<number[][]> {
  const [b, t] = ref.info(name).shape;
  const v = (await ref.read(name)) as BigInt64Array;
  return Array.from({ length: b }, (_, r) => Array.from(v.subarray(r * t, (r + 1) * t), Number));
}

describe('CLIP text encoders vs transformers', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype}: hidden states, final LN, pooled and projected outputs`, async () => {
      const ctx = await testContext();
      if (dtype === 'f16' && !ctx.f16) return console.warn('skipped: no shader-f16');
      const ref = await SafetensorsFile.open(new NodeFileSource(refPath));
      const opts = { context: ctx, dtype, variant: dtype === 'f16' ? 'fp16' : undefined };
      const te1 = await CLIPTextModel.fromPretrained(new FolderSource(model), 'text_encoder', opts);
      const te2 = await CLIPTextModelWithProjection.fromPretrained(new FolderSource(model), 'text_encoder_2', opts);
      const tol = dtype === 'f32' ? 1e-4 : 2e-2;
      const check = async (name: string, got: ArrayLike<number>) => {
        const want = await ref.readFloat32(name);
        const err = relL2(got, want);
        console.log(`${dtype} ${name}: rel-L2 ${err.toExponential(2)}`);
        expect(err, name).toBeLessThanOrEqual(tol);
      };
      for (const [enc, key, prefix] of [[te1, 'input_ids', 'te1'], [te2, 'input_ids_2', 'te2']] as const) {
        const n = enc.layers.length;
        const out = enc.encode(await ids(ref, key), { hiddenStates: Array.from({ length: n + 1 }, (_, k) => k), lastHiddenState: true, pooled: true });
        for (let k = 0; k <= n; k++) await check(`${prefix}.hidden_states.${k}`, await out.hiddenStates.get(k)!.read());
        await check(`${prefix}.last_hidden_state`, await out.lastHiddenState!.read());
        if (ref.tensors.has(`${prefix}.pooler_output`)) await check(`${prefix}.pooler_output`, await out.pooled!.read());
        if (prefix === 'te2') await check('te2.text_embeds', await out.textEmbeds!.read());
        out.dispose();
        // the default request (what SDXL uses): the penultimate state only
        const pen = enc.encode(await ids(ref, key));
        await check(`${prefix}.penultimate`, await pen.hiddenStates.get(-2)!.read());
        pen.dispose();
      }
      te1.dispose();
      te2.dispose();
      await ref.source.close();
      expect(ctx.memory.liveBytes).toBe(0);
    });
  }

  it('fromPretrained returns an instance of the class the config names; the projection loader refuses another architecture', async () => {
    const ctx = await testContext();
    const opts = { context: ctx, dtype: 'f32' as const };
    const te2 = await CLIPTextModelWithProjection.fromPretrained(new FolderSource(model), 'text_encoder_2', opts);
    const te2ByConfig = await CLIPTextModel.fromPretrained(new FolderSource(model), 'text_encoder_2', opts);
    const te1 = await CLIPTextModel.fromPretrained(new FolderSource(model), 'text_encoder', opts);
    expect(te2).toBeInstanceOf(CLIPTextModelWithProjection);
    expect(te2ByConfig).toBeInstanceOf(CLIPTextModelWithProjection);
    expect(te1).toBeInstanceOf(CLIPTextModel);
    expect(te1).not.toBeInstanceOf(CLIPTextModelWithProjection);
    expect([te1.text_projection, te2.text_projection !== null]).toEqual([null, true]);
    for (const m of [te1, te2, te2ByConfig]) m.dispose();
    const err = await CLIPTextModelWithProjection.fromPretrained(new FolderSource(model), 'text_encoder', opts).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/architectures.*is not CLIPTextModelWithProjection/);
    expect(ctx.memory.liveBytes).toBe(0);
  });

  it('a tampered weight file fails naming the key and shapes', async () => {
    const ctx = await testContext();
    const dir = join(model, 'text_encoder_2');
    const st = await SafetensorsFile.open(new NodeFileSource(join(dir, 'model.safetensors')));
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const k of st.keys()) {
      if (k === 'text_model.encoder.layers.1.mlp.fc1.bias') continue;
      const info = st.info(k);
      const shape = k === 'text_projection.weight' ? [info.shape[0] - 1, info.shape[1]] : [...info.shape];
      const data = (await st.readFloat32(k)).subarray(0, shape.reduce((a, d) => a * d, 1));
      tensors[k] = { dtype: 'F32', shape, data };
    }
    const src = new MemorySource({ 'te/config.json': readFileSync(join(dir, 'config.json'), 'utf8'), 'te/model.safetensors': encodeSafetensors(tensors) });
    const err = await CLIPTextModelWithProjection.fromPretrained(src, 'te', { context: ctx, dtype: 'f32' }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/missing: text_model\.encoder\.layers\.1\.mlp\.fc1\.bias \(expected shape \[96\]\)/);
    expect(err.message).toMatch(/text_projection\.weight: expected \[16, 24\], found \[15, 24\]/);
    await st.source.close();
  });
});
