// LoRA key layouts: detection on every fixture file, SGM block names on several UNet structures, the
// old diffusers layout (the fixture LoRA rewritten as ….lora.down.weight / processor.to_q_lora / text
// encoder lora_linear_layer keys) against the same reference, and the errors: a key that maps to no
// layer, a shape that does not fit, a missing half, LoHa / DoRA files, files of no known layout.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, encodeSafetensors, FolderSource, ModelLoadError, NodeFileSource, SafetensorsFile, type GpuContext, type SafetensorsDType } from '@ssd/tensor';
import { parseUNetConfig, UNet2DConditionModel, type UNet2DConditionConfig } from '@ssd/unet';
import { detectLayout, parseKey } from '../src/lora/layouts.js';
import { LoraAdapters } from '../src/lora/lora-adapters.js';
import { sgmBlockTable, sgmToDiffusers } from '../src/lora/sgm-names.js';
import { fixturesDir, hasFixtures, relL2, testContext } from '../../../testing/index.js';

const LORAS = join(fixturesDir, 'models/loras');
const MODEL = join(fixturesDir, 'models/tiny-ssd1b');
const config = (dir: string) => JSON.parse(readFileSync(join(fixturesDir, dir, 'config.json'), 'utf8')) as UNet2DConditionConfig;

describe('SGM block names', () => {
  it('map onto SSD-1B-like and SDXL-like structures as diffusers numbers them', () => {
    const ssd = sgmBlockTable(parseUNetConfig(config('models/tiny-ssd1b/unet')));
    const sdxl = sgmBlockTable(parseUNetConfig(config('models/tiny-sdxl-unet')));
    const cases: [string, string | null, string | null][] = [
      ['input_blocks_4_1_transformer_blocks_0_attn1_to_q', 'down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q', 'down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q'],
      ['input_blocks_1_0_in_layers_2', 'down_blocks_0_resnets_0_conv1', 'down_blocks_0_resnets_0_conv1'],
      ['input_blocks_5_0_emb_layers_1', 'down_blocks_1_resnets_1_time_emb_proj', 'down_blocks_1_resnets_1_time_emb_proj'],
      ['input_blocks_4_0_skip_connection', 'down_blocks_1_resnets_0_conv_shortcut', 'down_blocks_1_resnets_0_conv_shortcut'],
      ['input_blocks_3_0_op', 'down_blocks_0_downsamplers_0_conv', 'down_blocks_0_downsamplers_0_conv'],
      ['output_blocks_2_2_conv', 'up_blocks_0_upsamplers_0_conv', 'up_blocks_0_upsamplers_0_conv'],
      ['output_blocks_8_0_out_layers_3', 'up_blocks_2_resnets_2_conv2', 'up_blocks_2_resnets_2_conv2'],
      ['middle_block_0_in_layers_2', 'mid_block_resnets_0_conv1', 'mid_block_resnets_0_conv1'],
      ['middle_block_1_proj_in', null, 'mid_block_attentions_0_proj_in'], // SSD-1B's mid block has no attention
      ['middle_block_2_out_layers_3', null, 'mid_block_resnets_1_conv2'],
      ['input_blocks_0_0', 'conv_in', 'conv_in'],
      ['time_embed_0', 'time_embedding_linear_1', 'time_embedding_linear_1'],
      ['label_emb_0_2', 'add_embedding_linear_2', 'add_embedding_linear_2'],
      ['input_blocks_9_0_in_layers_2', null, null], // past the last block
    ];
    for (const [sgm, wantSsd, wantSdxl] of cases) {
      expect(sgmToDiffusers(sgm, ssd), sgm).toBe(wantSsd);
      expect(sgmToDiffusers(sgm, sdxl), sgm).toBe(wantSdxl);
    }
  });

  it('follow per-level layers_per_block and an upsampler in a level without attentions', () => {
    const cfg = { ...config('models/tiny-ssd1b/unet'), layers_per_block: [1, 2, 1], transformer_layers_per_block: 1, reverse_transformer_layers_per_block: null, up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'] };
    const t = sgmBlockTable(parseUNetConfig(cfg));
    expect(sgmToDiffusers('input_blocks_2_0_op', t)).toBe('down_blocks_0_downsamplers_0_conv');
    expect(sgmToDiffusers('input_blocks_4_1_proj_out', t)).toBe('down_blocks_1_attentions_1_proj_out');
    // up level 1 (UpBlock2D, 3 resnets, upsampler at inner index 1 — diffusers would say "attentions")
    expect(sgmToDiffusers('output_blocks_4_1_conv', t)).toBe('up_blocks_1_upsamplers_0_conv');
    expect(sgmToDiffusers('output_blocks_1_2_conv', t)).toBe('up_blocks_0_upsamplers_0_conv');
    expect(sgmToDiffusers('output_blocks_6_0_in_layers_2', t)).toBe('up_blocks_2_resnets_1_conv1');
  });
});

describe('layout detection', () => {
  it.skipIf(!hasFixtures(...['lora_kohya_sgm', 'lora_kohya_sgm.fp16', 'lora_kohya_diffusers', 'lcm_lora_kohya_diffusers.fp16', 'lora_peft'].map((f) => `models/loras/${f}.safetensors`)))('recognises every fixture file', async () => {
    const expected: Record<string, string> = {
      'lora_kohya_sgm.safetensors': 'kohya-sgm',
      'lora_kohya_sgm.fp16.safetensors': 'kohya-sgm',
      'lora_kohya_diffusers.safetensors': 'kohya-diffusers',
      'lcm_lora_kohya_diffusers.fp16.safetensors': 'kohya-diffusers',
      'lora_peft.safetensors': 'peft',
    };
    for (const [f, layout] of Object.entries(expected)) {
      const st = await SafetensorsFile.open(new NodeFileSource(join(LORAS, f)));
      expect(detectLayout(f, st.keys()), f).toBe(layout);
      await st.source.close();
    }
  });

  it('parses every key form of the old diffusers layout', () => {
    const p = (k: string) => parseKey('diffusers-old', k);
    expect(p('text_encoder_2.text_model.encoder.layers.1.self_attn.to_out_lora.up.weight')).toEqual({ component: 'text_encoder_2', module: 'text_model.encoder.layers.1.self_attn.out_proj', naming: 'path', role: 'up' });
    expect(p('text_encoder.text_model.encoder.layers.0.self_attn.to_k_lora.down.weight')).toMatchObject({ component: 'text_encoder', module: 'text_model.encoder.layers.0.self_attn.k_proj' });
    expect(p('text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_linear_layer.down.weight')).toMatchObject({ module: 'text_model.encoder.layers.0.mlp.fc1', role: 'down' });
    expect(p('unet.up_blocks.0.attentions.1.transformer_blocks.0.attn2.processor.to_out_lora.down.weight')).toMatchObject({ component: 'unet', module: 'up_blocks.0.attentions.1.transformer_blocks.0.attn2.to_out.0' });
    expect(p('down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight')).toMatchObject({ component: 'unet', module: 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q' });
    expect(p('unet.mid_block.resnets.0.conv1.lora.up.weight')).toMatchObject({ module: 'mid_block.resnets.0.conv1', role: 'up' });
    expect(p('unet.mid_block.resnets.0.conv1.alpha')).toMatchObject({ module: 'mid_block.resnets.0.conv1', role: 'alpha' });
    expect(parseKey('peft', 'text_encoder_2.text_model.encoder.layers.0.mlp.fc2.lora_B.weight')).toMatchObject({ component: 'text_encoder_2', role: 'up' });
    expect(parseKey('kohya-sgm', 'lora_te2_text_model_encoder_layers_0_mlp_fc2.alpha')).toEqual({ component: 'text_encoder_2', module: 'text_model_encoder_layers_0_mlp_fc2', naming: 'flat', role: 'alpha' });
    expect(parseKey('kohya-sgm', 'lora_unet_output_blocks_2_2_conv.lora_up.weight')).toMatchObject({ component: 'unet', naming: 'sgm' });
    expect(parseKey('peft', 'unet.x.lora_down.weight')).toBeNull();
  });

  it('refuses LoHa, LoKr, DoRA and Tucker LoCon by name, and files of no known layout', () => {
    expect(() => detectLayout('x', ['lora_unet_a.hada_w1_a', 'lora_unet_a.hada_w1_b'])).toThrow(/x: not supported: LoHa/);
    expect(() => detectLayout('x', ['lora_unet_a.lokr_w1', 'lora_unet_a.lokr_w2'])).toThrow(/not supported: LoKr/);
    expect(() => detectLayout('x', ['lora_unet_a.lora_down.weight', 'lora_unet_a.dora_scale'])).toThrow(/not supported: DoRA/);
    expect(() => detectLayout('x', ['unet.a.lora_A.weight', 'unet.a.lora_magnitude_vector'])).toThrow(/not supported: DoRA/);
    expect(() => detectLayout('x', ['lora_unet_a.lora_mid.weight'])).toThrow(/not supported: LoCon with a Tucker/);
    expect(() => detectLayout('x', ['model.diffusion_model.out.2.weight'])).toThrow(ModelLoadError);
    expect(() => detectLayout('x', ['model.diffusion_model.out.2.weight'])).toThrow(/not a LoRA file we recognise.*\n.*kohya-sgm/);
  });
});

type Tensors = Record<string, { dtype: SafetensorsDType; shape: number[]; data: Float32Array }>;

async function readAll(file: string): Promise<Tensors> {
  const st = await SafetensorsFile.open(new NodeFileSource(join(LORAS, file)));
  const out: Tensors = {};
  for (const k of st.keys()) out[k] = { dtype: 'F32', shape: [...st.info(k).shape], data: await st.readFloat32(k) };
  await st.source.close();
  return out;
}

const blob = (t: Tensors) => new Blob([encodeSafetensors(t) as BlobPart]);

describe.skipIf(!hasFixtures('reference/lora.safetensors', 'models/loras/lora_peft.safetensors', 'models/loras/lora_kohya_diffusers.safetensors', 'models/loras/lcm_lora_kohya_diffusers.fp16.safetensors'))('LoRA files on the tiny SSD-1B UNet', () => {
  let ctx: GpuContext;
  let unet: UNet2DConditionModel;
  let ref: SafetensorsFile;
  beforeAll(async () => {
    ctx = await testContext();
    unet = await UNet2DConditionModel.fromPretrained(new FolderSource(MODEL), { context: ctx, dtype: 'f32' });
    ref = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, 'reference/lora.safetensors')));
  });
  afterAll(async () => {
    unet?.dispose();
    await ref?.source.close();
  });

  it('the old diffusers layout (lora.down / processor.to_q_lora / lora_linear_layer) loads like the PEFT file', async () => {
    const peft = await readAll('lora_peft.safetensors');
    const old: Tensors = {};
    for (const [k, v] of Object.entries(peft)) {
      const m = /^(unet|text_encoder|text_encoder_2)\.(.+)\.lora_(A|B)\.weight$/.exec(k)!;
      const role = m[3] === 'A' ? 'down' : 'up';
      const attn = /^(.+\.attn[12])\.(to_q|to_k|to_v|to_out\.0)$/.exec(m[2]);
      const te = /^(.+\.self_attn)\.(q|k|v|out)_proj$/.exec(m[2]);
      if (m[1] === 'unet' && attn) old[`unet.${attn[1]}.processor.${attn[2].replace('.0', '')}_lora.${role}.weight`] = v;
      else if (m[1] === 'unet') old[`unet.${m[2]}.lora.${role}.weight`] = v;
      else if (te && te[2] !== 'out') old[`${m[1]}.${te[1]}.to_${te[2]}_lora.${role}.weight`] = v;
      else old[`${m[1]}.${m[2]}.lora_linear_layer.${role}.weight`] = v;
    }
    expect(Object.keys(old).some((k) => k.includes('processor.to_out_lora'))).toBe(true);
    const adapters = new LoraAdapters({ unet });
    const info = await adapters.load(blob(old), { skip: ['text_encoder', 'text_encoder_2'] });
    expect(info.layout).toBe('diffusers-old');
    expect(info.modules.unet).toBe(253);
    const sample = ctx.fromData(await ref.readFloat32('unet.sample'), ref.info('unet.sample').shape);
    const ehs = ctx.fromData(await ref.readFloat32('unet.encoder_hidden_states'), ref.info('unet.encoder_hidden_states').shape);
    const te = ctx.fromData(await ref.readFloat32('unet.text_embeds'), ref.info('unet.text_embeds').shape);
    const ids = await ref.readFloat32('unet.time_ids');
    const out = unet.forwardNCHW({ sample, timestep: (await ref.readFloat32('unet.timestep'))[0], encoderHiddenStates: ehs, textEmbeds: te, timeIds: [[...ids.subarray(0, 6)], [...ids.subarray(6)]] });
    expect(relL2(await out.read(), await ref.readFloat32('unet.lora_scale1.noise_pred'))).toBeLessThanOrEqual(1e-4);
    for (const t of [sample, ehs, te, out]) t.dispose();
    adapters.unload();
  });

  it('the LCM-LoRA fixture (kohya diffusers names, F16, UNet only) loads every module', async () => {
    const adapters = new LoraAdapters({ unet });
    const info = await adapters.load(join(LORAS, 'lcm_lora_kohya_diffusers.fp16.safetensors'));
    expect(info).toMatchObject({ layout: 'kohya-diffusers', modules: { unet: 253, text_encoder: 0, text_encoder_2: 0 } });
    adapters.unload();
    expect(adapters.extraBytes).toBe(0);
  });

  it('a key that maps to no layer, a misfit shape or a missing half is a CheckpointError naming the layout', async () => {
    const good = await readAll('lora_kohya_diffusers.safetensors');
    const adapters = new LoraAdapters({ unet });
    const load = (t: Tensors) => adapters.load(blob(t), { skip: ['text_encoder', 'text_encoder_2'] });
    const extra = { ...good, 'lora_unet_down_blocks_7_resnets_0_conv1.lora_down.weight': good['lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight'], 'lora_unet_down_blocks_7_resnets_0_conv1.lora_up.weight': good['lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight'] };
    const e1 = await load(extra).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(CheckpointError);
    expect(String(e1)).toMatch(/read as layout "kohya-diffusers"/);
    expect(String(e1)).toMatch(/lora_unet_down_blocks_7_resnets_0_conv1\.lora_down\.weight \(module unet\.down_blocks_7_resnets_0_conv1: maps to no layer/);
    const k = 'lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight';
    const misfit = { ...good, [k]: { dtype: 'F32' as const, shape: [4, 33], data: new Float32Array(4 * 33).fill(0.1) } };
    await expect(load(misfit)).rejects.toThrow(/shape mismatch: lora_unet_down_blocks_1_attentions_0_proj_in\.lora_down\.weight: expected \[rank, 32\] for unet\.down_blocks\.1\.attentions\.0\.proj_in, found \[4, 33\]/);
    const half = { ...good };
    delete half['lora_unet_down_blocks_0_resnets_0_conv2.lora_up.weight'];
    await expect(load(half)).rejects.toThrow(/missing: lora_unet_down_blocks_0_resnets_0_conv2\.lora_down\.weight \(its up/);
    // text-encoder keys with no text encoder given (and not skipped)
    await expect(adapters.load(blob(good))).rejects.toThrow(/no text_encoder was given to load it into/);
    expect(adapters.names).toEqual([]); // nothing stays half-loaded
    expect(adapters.extraBytes).toBe(0);
  });
});
