// VAE configs that ask for absurd sizes or give the wrong types (issue 20 items 8, 11): ConfigErrors
// naming the key when the config is parsed, before any weight is read.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@ssd/tensor';
import { parseAutoencoderKLConfig, parseAutoencoderTinyConfig, type AutoencoderKLConfig } from '@ssd/vae';
import { fixturesDir } from '../../../testing/index.js';

const base = (): AutoencoderKLConfig => JSON.parse(readFileSync(join(fixturesDir, 'models/tiny-ssd1b/vae/config.json'), 'utf8'));

function keyOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).key;
  }
  throw new Error('accepted');
}

describe('VAE configs with absurd or mistyped values', () => {
  it('AutoencoderKL', () => {
    for (const [change, key] of [
      [{ sample_size: '8' }, 'sample_size'],
      [{ sample_size: 1e9 }, 'sample_size'],
      [{ sample_size: [64, 'x'] }, 'sample_size'],
      [{ layers_per_block: 1e9 }, 'layers_per_block'],
      [{ block_out_channels: [8, 16, 32, 1e9] }, 'block_out_channels'],
      [{ block_out_channels: Array(20).fill(8), down_block_types: Array(20).fill('DownEncoderBlock2D'), up_block_types: Array(20).fill('UpDecoderBlock2D') }, 'block_out_channels'],
      [{ latent_channels: 1e9 }, 'latent_channels'],
      [{ norm_num_groups: 5 }, 'norm_num_groups'],
    ] as const) {
      expect(keyOf(() => parseAutoencoderKLConfig({ ...base(), ...change } as AutoencoderKLConfig, 'vae/config.json')), JSON.stringify(change).slice(0, 60)).toBe(key);
    }
    expect(parseAutoencoderKLConfig({ ...base(), sample_size: [1024, 768] }).downFactor).toBe(8);
  });

  it('AutoencoderTiny', () => {
    expect(keyOf(() => parseAutoencoderTinyConfig({ num_decoder_blocks: [3, 3, 3, 1e9] }))).toBe('num_decoder_blocks');
    expect(keyOf(() => parseAutoencoderTinyConfig({ sample_size: '512' }))).toBe('sample_size');
    expect(parseAutoencoderTinyConfig({}).downFactor).toBe(8);
  });
});
