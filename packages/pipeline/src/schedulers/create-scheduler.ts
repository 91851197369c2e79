// Choosing a scheduler by CLI name or diffusers class name, built from a pipeline's scheduler_config.json
// the way `Class.from_config(pipe.scheduler.config, **overrides)` builds it: the config's keys, then the
// overrides the CLI name implies, each class reading only its own keys.
import { ConfigError } from '@ssd/tensor';
import { ConfigReader, type SchedulerConfig } from './config.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm-solver-multistep.js';
import { EulerAncestralDiscreteScheduler } from './euler-ancestral-discrete.js';
import { EulerDiscreteScheduler } from './euler-discrete.js';
import { LCMScheduler } from './lcm.js';
import { SCHEDULER_NAMES, type Scheduler, type SchedulerName } from './scheduler.js';
import { UniPCMultistepScheduler } from './unipc-multistep.js';

type SchedulerClass = new (cfg: ConfigReader) => Scheduler;

const CLASSES: Record<string, SchedulerClass> = {
  EulerDiscreteScheduler,
  EulerAncestralDiscreteScheduler,
  DDPMScheduler,
  DDIMScheduler,
  DPMSolverMultistepScheduler,
  UniPCMultistepScheduler,
  LCMScheduler,
};

/** The diffusers class names createScheduler accepts. */
export const SCHEDULER_CLASS_NAMES = Object.keys(CLASSES);

/** Each CLI name: its diffusers class and the config overrides it implies. */
export const SCHEDULER_PRESETS: Readonly<Record<SchedulerName, { className: string; overrides: SchedulerConfig }>> = {
  euler: { className: 'EulerDiscreteScheduler', overrides: {} },
  'euler-a': { className: 'EulerAncestralDiscreteScheduler', overrides: {} },
  ddpm: { className: 'DDPMScheduler', overrides: {} },
  ddim: { className: 'DDIMScheduler', overrides: {} },
  'dpm++2m': {
    className: 'DPMSolverMultistepScheduler',
    overrides: { algorithm_type: 'dpmsolver++', solver_order: 2, use_karras_sigmas: false },
  },
  'dpm++2m-karras': {
    className: 'DPMSolverMultistepScheduler',
    overrides: { algorithm_type: 'dpmsolver++', solver_order: 2, use_karras_sigmas: true },
  },
  unipc: { className: 'UniPCMultistepScheduler', overrides: {} },
  lcm: { className: 'LCMScheduler', overrides: {} },
};

/**
 * A scheduler by CLI name ('euler', 'euler-a', 'ddpm', 'ddim', 'dpm++2m', 'dpm++2m-karras', 'unipc', 'lcm') or
 * diffusers class name ('DPMSolverMultistepScheduler', ...), configured from `config` (a diffusers
 * scheduler_config.json; keys starting with "_" and keys the class does not use are ignored).
 * Unknown names and unsupported values throw ConfigError.
 */
export function createScheduler(nameOrClass: string, config: SchedulerConfig = {}): Scheduler {
  const key = typeof nameOrClass === 'string' ? nameOrClass.trim() : nameOrClass;
  const preset = (SCHEDULER_NAMES as readonly string[]).includes(String(key).toLowerCase())
    ? SCHEDULER_PRESETS[String(key).toLowerCase() as SchedulerName]
    : undefined;
  const className = preset?.className ?? key;
  const Class = typeof className === 'string' && Object.prototype.hasOwnProperty.call(CLASSES, className) ? CLASSES[className] : undefined;
  if (!Class) {
    throw new ConfigError(
      'scheduler',
      nameOrClass,
      `unknown scheduler; use one of ${SCHEDULER_NAMES.join(', ')} or a diffusers class: ${SCHEDULER_CLASS_NAMES.join(', ')}`,
    );
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigError('scheduler_config', config, 'must be a JSON object (a diffusers scheduler_config.json)');
  }
  const merged: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) if (!k.startsWith('_')) merged[k] = v;
  Object.assign(merged, preset?.overrides ?? {});
  return new Class(new ConfigReader(merged, className as string));
}
