// UNet2DConditionModel vs diffusers: every case of every reference/unet_*.json fixture (single-resnet
// mid block with uneven per-layer depths, and an attention mid block), f32 and f16; the debug.*
// intermediates localise a mismatch. Config errors and tampered weights give named errors.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, FolderSource, MemorySource, NodeFileSource, SafetensorsFile, type Tensor, type WeightStore } from '@ssd/tensor';
import { nhwcToNchw } from '@ssd/kernels';
import { getDownBlock, getMidBlock, getUpBlock, parseUNetConfig, UNet2DConditionModel, unetLoadedElements } from '@ssd/unet';
import { fixturesDir, relL2, testContext } from '../../../testing/index.js';

interface UNetCase {
  name: string;
  batch: number;
  height: number;
  width: number;
  timestep: number | number[];
  time_ids: number[][];
}

const refDir = join(fixturesDir, 'reference');
const fixtures = readdirSync(refDir).filter((f) => /^unet_.*\.json$/.test(f));

describe('UNet2DConditionModel vs diffusers fixtures', () => {
  it('has fixtures', () => expect(fixtures.length).toBeGreaterThan(0));
  for (const f of fixtures) {
    const meta = JSON.parse(readFileSync(join(refDir, f), 'utf8')) as { model: string; cases: UNetCase[] };
    const modelDir = join(fixturesDir, meta.model);
    for (const dtype of ['f32', 'f16'] as const) {
      it(`${f.replace('.json', '')} ${dtype}: every case within ${dtype === 'f32' ? '1e-4' : '2e-2'} rel-L2`, async () => {
        const ctx = await testContext();
        if (dtype === 'f16' && !ctx.f16) return console.warn('skipped: no shader-f16');
        const unet = await UNet2DConditionModel.fromPretrained(new FolderSource(modelDir), { subfolder: '', context: ctx, dtype, variant: dtype === 'f16' ? 'fp16' : undefined });
        const ref = await SafetensorsFile.open(new NodeFileSource(join(refDir, f.replace('.json', '.safetensors'))));
        try {
          for (const c of meta.cases) {
            const get = (k: string) => ref.readFloat32(`${c.name}.${k}`);
            const sampleNCHW = await get('sample');
            const [b, ch, h, w] = ref.info(`${c.name}.sample`).shape;
            const sample = ctx.fromData(sampleNCHW, [b, ch, h, w]);
            const ehsInfo = ref.info(`${c.name}.encoder_hidden_states`);
            const ehs = ctx.fromData(await get('encoder_hidden_states'), ehsInfo.shape);
            const teInfo = ref.info(`${c.name}.text_embeds`);
            const te = ctx.fromData(await get('text_embeds'), teInfo.shape);
            const ts = await get('timestep');
            const timeIds = await get('time_ids');
            const rows = Array.from({ length: b }, (_, k) => [...timeIds.subarray(k * 6, k * 6 + 6)]);
            const captured = new Map<string, Tensor>();
            const out = unet.forwardNCHW({
              sample,
              timestep: ts.length === 1 ? ts[0] : [...ts],
              encoderHiddenStates: ehs,
              textEmbeds: te,
              timeIds: rows,
              onIntermediate: (name, t) => captured.set(name, nhwcToNchw(t)),
            });
            const got = await out.read();
            const want = await get('noise_pred');
            const err = relL2(got, want);
            const tol = dtype === 'f32' ? 1e-4 : 2e-2;
            if (!(err <= tol)) {
              // localise: the first intermediate that drifts
              const lines: string[] = [];
              for (const [name, t] of captured) {
                const key = `${c.name}.debug.${name}`;
                if (!ref.tensors.has(key)) continue;
                lines.push(`  ${name}: rel-L2 ${relL2(await t.read(), await ref.readFloat32(key)).toExponential(2)}`);
              }
              console.error(`${f} ${c.name} ${dtype}: noise_pred rel-L2 ${err}\n${lines.join('\n')}`);
            }
            console.log(`${f} ${c.name} ${dtype}: rel-L2 ${err.toExponential(3)}`);
            expect(err).toBeLessThanOrEqual(tol);
            for (const t of [sample, ehs, te, out, ...captured.values()]) t.dispose();
          }
        } finally {
          unet.dispose();
          await ref.source.close();
        }
      });
    }
  }
});

describe('UNet config and weights', () => {
  const cfgPath = join(fixturesDir, 'models/tiny-ssd1b/unet/config.json');
  const base = () => JSON.parse(readFileSync(cfgPath, 'utf8'));

  it('unsupported config values are ConfigErrors naming the key and value', () => {
    for (const [key, value] of [
      ['mid_block_type', 'UNetMidBlock2DSimpleCrossAttn'],
      ['down_block_types', ['DownBlock2D', 'SimpleCrossAttnDownBlock2D', 'CrossAttnDownBlock2D']],
      ['resnet_time_scale_shift', 'scale_shift'],
      ['act_fn', 'gelu'],
      ['addition_embed_type', 'text_image'],
      ['class_embed_type', 'timestep'],
      ['time_cond_proj_dim', 2.5],
    ] as const) {
      const cfg = { ...base(), [key]: value };
      let err: unknown;
      try {
        parseUNetConfig(cfg);
      } catch (e) {
        err = e;
      }
      expect(err, key).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain(key);
    }
    const cfg = base();
    cfg.reverse_transformer_layers_per_block = null; // per-layer lists need it, as diffusers says
    expect(() => parseUNetConfig(cfg)).toThrow(/reverse_transformer_layers_per_block/);
  });

  it("builds each block as the diffusers class its config type names; an unknown type is a ConfigError naming it", async () => {
    const ctx = await testContext();
    const cfg = base();
    const unet = await UNet2DConditionModel.fromPretrained(new FolderSource(join(fixturesDir, 'models/tiny-ssd1b')), { context: ctx, dtype: 'f32' });
    try {
      expect(unet.down_blocks.map((b) => b.constructor.name)).toEqual(cfg.down_block_types);
      expect(unet.up_blocks.map((b) => b.constructor.name)).toEqual(cfg.up_block_types);
      expect(unet.mid_block?.constructor.name ?? null).toBe(cfg.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : cfg.mid_block_type);
    } finally {
      unet.dispose();
    }
    const spec = parseUNetConfig(cfg);
    const store = null as unknown as WeightStore; // the switch refuses before it takes a weight
    for (const [key, build] of [
      ['down_block_types', () => getDownBlock(store, 'down_blocks.0', { ...spec.down[0], type: 'SimpleCrossAttnDownBlock2D' as never }, spec)],
      ['mid_block_type', () => getMidBlock(store, 'mid_block', { ...spec.mid!, type: 'UNetMidBlock2DSimpleCrossAttn' as never }, spec)],
      ['up_block_types', () => getUpBlock(store, 'up_blocks.0', { ...spec.up[0], type: 'SimpleCrossAttnUpBlock2D' as never }, spec)],
    ] as const) {
      const err = (() => {
        try {
          build();
        } catch (e) {
          return e;
        }
      })();
      expect(err, key).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(new RegExp(`${key}.*SimpleCrossAttn`));
    }
  });

  it('a tampered weight file (missing tensor, wrong shape) fails naming the keys and shapes', async () => {
    const ctx = await testContext();
    const dir = join(fixturesDir, 'models/tiny-ssd1b/unet');
    const st = await SafetensorsFile.open(new NodeFileSource(join(dir, 'diffusion_pytorch_model.safetensors')));
    const { encodeSafetensors } = await import('@ssd/tensor');
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const k of st.keys()) {
      if (k === 'mid_block.resnets.0.conv1.bias') continue; // missing
      const info = st.info(k);
      let data = await st.readFloat32(k);
      let shape = [...info.shape];
      if (k === 'conv_in.weight') {
        shape = [shape[0], shape[1], 1, 1];
        data = data.subarray(0, shape[0] * shape[1]);
      }
      tensors[k] = { dtype: 'F32', shape, data };
    }
    const src = new MemorySource({ 'unet/config.json': readFileSync(join(dir, 'config.json'), 'utf8'), 'unet/diffusion_pytorch_model.safetensors': encodeSafetensors(tensors) });
    const err = await UNet2DConditionModel.fromPretrained(src, { context: ctx, dtype: 'f32' }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/missing: mid_block\.resnets\.0\.conv1\.bias \(expected shape \[48\]\)/);
    expect(err.message).toMatch(/conv_in\.weight: expected \[16, 4, 3, 3\], found \[16, 4, 1, 1\]/);
    expect(ctx.memory.liveBytes).toBe(0);
    await st.source.close();
  });
});

describe('unetLoadedElements', () => {
  it("counts a resnet's or upsampler's 3×3 conv in the layout it loads in, every other tensor as in the file", async () => {
    const ctx = await testContext();
    const wino = ctx.info.isCpu; // the conv table picks F(2×2) at 320 channels in f16 on CPU adapters, direct elsewhere
    for (const key of ['down_blocks.0.resnets.1.conv2.weight', 'up_blocks.1.upsamplers.0.conv.weight']) {
      expect(unetLoadedElements(ctx, key, [320, 320, 3, 3], 'f16')).toBe((wino ? 16 : 9) * 320 * 320);
    }
    expect(unetLoadedElements(ctx, 'conv_in.weight', [320, 4, 3, 3], 'f16')).toBe(320 * 4 * 9);
    expect(unetLoadedElements(ctx, 'down_blocks.0.downsamplers.0.conv.weight', [320, 320, 3, 3], 'f16')).toBe(320 * 320 * 9); // stride 2: direct
    expect(unetLoadedElements(ctx, 'down_blocks.1.resnets.0.conv_shortcut.weight', [640, 320, 1, 1], 'f16')).toBe(640 * 320);
    expect(unetLoadedElements(ctx, 'down_blocks.0.resnets.1.conv2.bias', [320], 'f16')).toBe(320);
  });
});
