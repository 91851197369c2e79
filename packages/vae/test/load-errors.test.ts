// What a broken VAE folder produces: a tampered weight file (missing tensor, wrong shape, extra
// tensor) is one CheckpointError naming every key with the expected and found shapes; config values
// the VAE cannot run are ConfigErrors naming key and value. No GPU work runs for any of them.
import { describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, InvalidArgumentError } from '@ssd/tensor';
import { AutoencoderKL, AutoencoderTiny, loadAutoencoder, parseAutoencoderKLConfig, parseAutoencoderTinyConfig } from '@ssd/vae';
import { testContext } from '../../../testing/index.js';
import { editedModel, klModelDir, referenceJson, taesdModelDir } from './fixtures.js';

const ctx = await testContext();
const dir = klModelDir(await referenceJson('vae'));
const live = () => ctx.memory.liveBytes;

describe('tampered weight files → CheckpointError naming the key', () => {
  it('a missing tensor', async () => {
    const before = live();
    const src = await editedModel(dir, (t) => {
      delete t['decoder.up_blocks.1.resnets.2.conv2.weight'];
      return t;
    });
    const err = await AutoencoderKL.fromPretrained(src, { context: ctx }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/missing: decoder\.up_blocks\.1\.resnets\.2\.conv2\.weight \(expected shape \[\d+, \d+, 3, 3\]\)/);
    expect(live()).toBe(before); // everything allocated for the model was freed
  });

  it('a wrong shape, an unexpected key and a missing legacy-named attention weight, all in one error', async () => {
    const src = await editedModel(dir, (t) => {
      const w = t['decoder.conv_in.weight'];
      t['decoder.conv_in.weight'] = { ...w, shape: [w.shape[0], w.shape[1], 1, w.shape[2] * w.shape[3]] };
      t['decoder.extra.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
      delete t['encoder.mid_block.attentions.0.to_k.weight'];
      return t;
    });
    const err = await AutoencoderKL.fromPretrained(src, { context: ctx }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/shape mismatch: decoder\.conv_in\.weight: expected \[\d+, 4, 3, 3\], found \[\d+, 4, 1, 9\]/);
    expect(err.message).toMatch(/unexpected: decoder\.extra\.weight/);
    expect(err.message).toMatch(/missing: encoder\.mid_block\.attentions\.0\.to_k\.weight/);
    expect((err as CheckpointError).problems).toHaveLength(3);
  });

  it("parts: 'decoder' ignores the encoder's keys but still checks the decoder's", async () => {
    const src = await editedModel(dir, (t) => {
      delete t['encoder.conv_in.weight'];
      delete t['post_quant_conv.bias'];
      return t;
    });
    const err = await AutoencoderKL.fromPretrained(src, { context: ctx, parts: 'decoder' }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).problems.map((p) => p.key)).toEqual(['post_quant_conv.bias']);
  });

  it('a misspelt parts value is an InvalidArgumentError for both autoencoders, before anything loads', async () => {
    const before = live();
    for (const [load, folder, name] of [[AutoencoderKL.fromPretrained, dir, 'AutoencoderKL'], [AutoencoderTiny.fromPretrained, taesdModelDir, 'AutoencoderTiny']] as const) {
      const err = await load(folder, { context: ctx, parts: 'decoders' as never }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toBe(`${name}: parts must be 'both', 'decoder' or 'encoder', got "decoders"`);
    }
    expect(live()).toBe(before);
  });

  it('a tiny autoencoder with a block conv of the wrong width', async () => {
    const src = await editedModel(taesdModelDir, (t) => {
      const w = t['decoder.layers.3.conv.2.weight'];
      t['decoder.layers.3.conv.2.weight'] = { ...w, shape: [w.shape[1], w.shape[0] * 9, 1, 1] };
      return t;
    });
    const err = await AutoencoderTiny.fromPretrained(src, { context: ctx }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/decoder\.layers\.3\.conv\.2\.weight: expected \[16, 16, 3, 3\]/);
  });
});

describe('config errors name the key and the value', () => {
  const base = { block_out_channels: [8, 16], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'], norm_num_groups: 4 };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an attention down block', { down_block_types: ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D'] }, /"down_block_types".*"AttnDownEncoderBlock2D" is not supported/],
    ['an unknown up block', { up_block_types: ['UpDecoderBlock2D', 'Foo'] }, /"up_block_types".*"Foo"/],
    ['block lists of different lengths', { up_block_types: ['UpDecoderBlock2D'] }, /"up_block_types".*one block type per block_out_channels entry \(2\)/],
    ['act_fn gelu', { act_fn: 'gelu' }, /"act_fn" = "gelu"/],
    ['groups that do not divide', { norm_num_groups: 3 }, /"norm_num_groups" = 3: must divide/],
    ['a negative scaling factor', { scaling_factor: -1 }, /"scaling_factor" = -1/],
    ['latents_mean of the wrong length', { latents_mean: [0, 0], latents_std: [1, 1, 1, 1] }, /"latents_mean"/],
    ['another class', { _class_name: 'AutoencoderTiny' }, /"_class_name" = "AutoencoderTiny"/],
  ];
  for (const [what, patch, re] of cases) {
    it(`AutoencoderKL: ${what}`, () => {
      expect(() => parseAutoencoderKLConfig({ ...base, ...patch })).toThrow(ConfigError);
      expect(() => parseAutoencoderKLConfig({ ...base, ...patch })).toThrow(re);
    });
  }
  it('AutoencoderTiny: act_fn, upsample_fn, stage counts', () => {
    expect(() => parseAutoencoderTinyConfig({ act_fn: 'silu' })).toThrow(/"act_fn" = "silu"/);
    expect(() => parseAutoencoderTinyConfig({ upsample_fn: 'bilinear' })).toThrow(/"upsample_fn" = "bilinear"/);
    expect(() => parseAutoencoderTinyConfig({ num_decoder_blocks: [3, 3, 3] })).toThrow(/"num_decoder_blocks"/);
  });
  it('shift_factor and latents_mean/std set the latent scaling', () => {
    expect(parseAutoencoderKLConfig({ ...base, scaling_factor: 0.5, shift_factor: 0.1 }).latentScaling).toEqual({ scalingFactor: 0.5, std: null, shift: [0.1, 0.1, 0.1, 0.1] });
    const s = parseAutoencoderKLConfig({ ...base, latents_mean: [1, 2, 3, 4], latents_std: [5, 6, 7, 8] }).latentScaling;
    expect(s.std).toEqual([5, 6, 7, 8]);
    expect(s.shift).toEqual([1, 2, 3, 4]);
  });
  it('loadAutoencoder picks the class from _class_name', async () => {
    const tiny = await loadAutoencoder(taesdModelDir, { context: ctx });
    expect(tiny).toBeInstanceOf(AutoencoderTiny);
    tiny.dispose();
  });
});
