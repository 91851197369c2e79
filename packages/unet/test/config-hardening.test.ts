// UNet configs that contradict themselves or ask for absurd sizes (issue 20 items 8, 11): each is a
// ConfigError naming the key when the config is parsed — before any weight is read — instead of a
// kernel message after loading ("groupNorm: x must have shape …") or a silently coerced value.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@ssd/tensor';
import { parseUNetConfig, type UNet2DConditionConfig } from '@ssd/unet';
import { fixturesDir } from '../../../testing/index.js';

const base = (): UNet2DConditionConfig => JSON.parse(readFileSync(join(fixturesDir, 'models/tiny-ssd1b/unet/config.json'), 'utf8'));

describe('parseUNetConfig refuses contradictory and absurd configs', () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['norm_num_groups not dividing the channels', { norm_num_groups: 5 }, 'norm_num_groups', /must divide every block_out_channels entry \(16 does not split into 5 groups\)/],
    ['sample_size as a string', { sample_size: '8' }, 'sample_size', /must be a positive integer/],
    ['a fractional sample_size', { sample_size: 12.5 }, 'sample_size', /must be a positive integer/],
    ['sample_size 10⁹', { sample_size: 1e9 }, 'sample_size', /must be at most 512/],
    ['10⁹ layers per block', { layers_per_block: 1e9 }, 'layers_per_block', /must be at most 64/],
    ['a huge channel count', { block_out_channels: [16, 32, 1e9] }, 'block_out_channels', /must be at most 65536/],
    ['freq_shift as a string', { freq_shift: 'x' }, 'freq_shift', /must be a finite number/],
    ['an infinite norm_eps', { norm_eps: Infinity }, 'norm_eps', /must be a positive finite number/],
    ['flip_sin_to_cos as a string', { flip_sin_to_cos: 'yes' }, 'flip_sin_to_cos', /must be true or false/],
    ['use_linear_projection as a number', { use_linear_projection: 1 }, 'use_linear_projection', /must be true or false/],
  ];
  for (const [name, change, key, message] of cases) {
    it(name, () => {
      let err: unknown;
      try {
        parseUNetConfig({ ...base(), ...change } as UNet2DConditionConfig);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).key).toBe(key);
      expect((err as Error).message).toMatch(/^unet\/config\.json: /);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('the fixture config still parses, sample_size included', () => {
    expect(parseUNetConfig(base()).sampleSize).toBe(16);
  });
});
