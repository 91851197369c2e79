// Scheduler configs that would build absurd tables or a schedule without noise (issue 20 items 3, 8):
// each is a ConfigError naming the key when the scheduler is created, before any table is built or
// any step runs — for every scheduler class.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@ssd/tensor';
import { createScheduler, SCHEDULER_CLASS_NAMES } from '../src/schedulers/index.js';

function configError(className: string, config: Record<string, unknown>): ConfigError {
  try {
    createScheduler(className, config);
  } catch (e) {
    expect(e, `${className} ${JSON.stringify(config).slice(0, 80)}`).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`${className} accepted ${JSON.stringify(config).slice(0, 80)}`);
}

const cases: [string, Record<string, unknown>, string, RegExp][] = [
  ['2·10⁹ training timesteps', { num_train_timesteps: 2_000_000_000 }, 'num_train_timesteps', /must be an integer in \[2, 100000\]/],
  ['10¹² training timesteps', { num_train_timesteps: 1e12 }, 'num_train_timesteps', /must be an integer in \[2, 100000\]/],
  ['a trained_betas list longer than the timesteps', { trained_betas: Array(5000).fill(0.01) }, 'trained_betas', /num_train_timesteps \(1000\) numbers, found 5000/],
  ['a beta outside [0, 1]', { num_train_timesteps: 4, trained_betas: [0.1, 0.2, 1.5, 0.3] }, 'trained_betas', /entry 2 is 1\.5: every beta must be a number in \[0, 1\]/],
  ['a beta of 1 (σ infinite)', { num_train_timesteps: 4, trained_betas: [0.1, 1, 0.2, 0.3] }, 'trained_betas', /ᾱ \(the product of 1 − β\) reaches 0 at timestep 1 of 4/],
  ['steps_offset past the table', { steps_offset: 1000 }, 'steps_offset', /must be an integer in \[0, num_train_timesteps = 1000\)/],
  ['a huge steps_offset', { steps_offset: 1e15 }, 'steps_offset', /must be an integer in \[0, num_train_timesteps/],
  ['original_inference_steps beyond the training timesteps', { original_inference_steps: 1e9 }, 'original_inference_steps', /must be an integer in \[1, num_train_timesteps = 1000\]/],
  ['zero betas (a schedule without noise)', { beta_start: 0, beta_end: 0, beta_schedule: 'linear', prediction_type: 'epsilon' }, 'beta_end', /every beta is 0/],
  ['zero trained betas', { num_train_timesteps: 3, trained_betas: [0, 0, 0] }, 'trained_betas', /every beta is 0/],
  ['a negative sigma_min', { sigma_min: -5 }, 'sigma_min', /must be a finite noise level ≥ 0/],
  ['sigma_max below sigma_min', { sigma_min: 2, sigma_max: 1 }, 'sigma_max', /> sigma_min \(2\)/],
  ['a string sigma_min', { sigma_min: '0.1' }, 'sigma_min', /must be a number/],
];

describe('scheduler configs that cannot work are ConfigErrors at creation', () => {
  for (const className of SCHEDULER_CLASS_NAMES) {
    for (const [name, config, key, message] of cases) {
      // Euler ancestral refuses prediction_type 'sample' on its own; the cases use epsilon throughout
      it(`${className}: ${name}`, () => {
        const e = configError(className, config);
        expect(e.key).toBe(key);
        expect(e.message).toMatch(message);
        expect(e.message.length, 'a long value is shown by its start').toBeLessThan(600);
      });
    }
  }

  it('zero betas with prediction_type "sample" (the fuzzing case) fail at creation, not as a NaN coefficient at the first step', () => {
    for (const className of ['EulerDiscreteScheduler', 'DDIMScheduler', 'DPMSolverMultistepScheduler', 'UniPCMultistepScheduler', 'DDPMScheduler']) {
      expect(configError(className, { beta_start: 0, beta_end: 0, prediction_type: 'sample' }).key).toBe('beta_end');
    }
  });

  it('100,000 training timesteps with the default betas underflow ᾱ: named, not an infinite σ', () => {
    expect(configError('EulerDiscreteScheduler', { num_train_timesteps: 100_000 }).message).toMatch(/ᾱ \(the product of 1 − β\) reaches 0 at timestep \d+ of 100000/);
  });

  it('sane values still build', () => {
    for (const className of SCHEDULER_CLASS_NAMES) {
      expect(() => createScheduler(className, { clip_sample: false, num_train_timesteps: 2000, steps_offset: 1, original_inference_steps: 50, sigma_min: 0.03, sigma_max: 14.6 })).not.toThrow();
    }
  });
});
