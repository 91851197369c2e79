// Single-file checkpoints at full size, headers only: SDXL base, SSD-1B and Vega (the published configs
// and key lists) mapped to SGM names as diffusers' converter writes them, then read back by
// SingleFileSource. The architecture inferred from keys and shapes is the published one: the UNet's
// parsed spec (SDXL writes depths as [1, 2, 10], our inference as per-resnet lists), the VAE's config
// field for field, the text encoders' every field but the writer's versions.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { openComponentTensors, pipelineToSgm, SingleFileSource, type SdxlComponent, type TensorEntry } from '@ssd/tensor';
import { SyntheticSafetensorsSource } from '@ssd/tensor/testing';
import { parseUNetConfig, type UNet2DConditionConfig } from '@ssd/unet';
import { ARCHS, staticFiles, syntheticModelSource } from '../lib/random-model.js';

const COMPONENTS: SdxlComponent[] = ['unet', 'vae', 'text_encoder', 'text_encoder_2'];

describe('full-size single files: the architecture from keys and shapes', () => {
  for (const arch of ARCHS) {
    it(`${arch}: every component's config is the published one`, async () => {
      const folder = await syntheticModelSource(arch, 'F16');
      const entries: Partial<Record<SdxlComponent, Map<string, TensorEntry>>> = {};
      for (const c of COMPONENTS) {
        const t = await openComponentTensors(folder, c, { variant: 'fp16' });
        entries[c] = new Map(t.keys().map((k) => [k, t.get(k)!]));
      }
      const keys = pipelineToSgm(entries).map(([key, e]) => ({ key, shape: [...e.shape] }));
      expect(keys.filter((k) => k.key.startsWith('model.diffusion_model.middle_block.1.')).length > 0).toBe(arch === 'sdxl');
      const sf = await SingleFileSource.open(new SyntheticSafetensorsSource(`${arch}-sgm.safetensors`, keys, 'F16'));
      const published = async (c: string) => JSON.parse(await readFile(staticFiles(arch)[`${c}/config.json`], 'utf8')) as Record<string, unknown>;

      const unet = sf.config('unet');
      expect(parseUNetConfig(unet as UNet2DConditionConfig)).toEqual(parseUNetConfig((await published('unet')) as UNet2DConditionConfig));
      const want = await published('unet');
      for (const k of ['block_out_channels', 'attention_head_dim', 'cross_attention_dim', 'addition_time_embed_dim', 'projection_class_embeddings_input_dim', 'norm_num_groups', 'sample_size', 'mid_block_type', 'layers_per_block', 'use_linear_projection']) {
        expect(unet[k], k).toEqual(want[k]);
      }
      expect(sf.config('vae')).toEqual(await published('vae'));
      for (const c of ['text_encoder', 'text_encoder_2'] as const) {
        const [got, ref] = [sf.config(c), await published(c)];
        for (const o of [got, ref]) for (const k of ['torch_dtype', 'transformers_version']) delete o[k];
        expect(got).toEqual(ref);
      }
      const scheduler = JSON.parse(await readFile(staticFiles(arch)['scheduler/scheduler_config.json'], 'utf8')) as Record<string, unknown>;
      expect(sf.config('scheduler')).toMatchObject(scheduler);
    });
  }
});

describe('make-random-model --single-file', () => {
  it('holds every published parameter of each architecture, under SGM names', async () => {
    const { singleFileTensors, EXPECTED_PARAMS } = await import('../lib/random-model.js');
    for (const arch of ARCHS) {
      const { tensors, params, size } = await singleFileTensors(arch, 'F16');
      expect(params, arch).toBe(EXPECTED_PARAMS[`${arch}/unet`] + EXPECTED_PARAMS.vae + EXPECTED_PARAMS.text_encoder + EXPECTED_PARAMS.text_encoder_2);
      expect(size).toBeGreaterThan(params * 2);
      expect(tensors.every(([k]) => /^(model\.diffusion_model|first_stage_model|conditioner\.embedders\.[01])\./.test(k)), arch).toBe(true);
    }
  });
});
