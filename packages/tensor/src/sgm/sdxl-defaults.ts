// What a single file's shapes cannot say, and SDXL's published configs say instead. Each rule gives
// SDXL's exact value for SDXL-sized models (SDXL, SSD-1B, Vega: widths multiple of 64) and stays valid
// for narrower test models, where it reproduces diffusers' tiny test models (our fixtures): 64-channel
// heads or the widths' common divisor; 32 GroupNorm groups or half the narrowest width. The
// SingleFileSource option `configs` replaces any inferred field.

import { ConfigError } from '../errors.js';

/** The diffusers release whose config semantics and converter we follow. */
export const DIFFUSERS_VERSION = '0.26.3';

function gcd(a: number, b: number): number {
  return b ? gcd(b, a % b) : a;
}

/** Channels per attention head: SDXL's 64 (num_head_channels), or the widths' largest common divisor below it. */
export function headDim(widths: readonly number[]): number {
  return widths.reduce(gcd, 64);
}

/** GroupNorm groups: SDXL's 32, or half the narrowest width, lowered until every width divides. */
export function normGroups(widths: readonly number[]): number {
  let g = Math.max(1, Math.min(32, Math.floor(widths[0] / 2)));
  while (widths.some((c) => c % g)) g--;
  return g;
}

/** Latent sample size: SDXL's 128 (1024 px), capped at the first width for test models. */
export function unetSampleSize(widths: readonly number[]): number {
  return Math.min(128, widths[0]);
}

/** SDXL's scheduler (diffusers' SDXL base scheduler_config.json). */
export const SDXL_SCHEDULER_CONFIG: Readonly<Record<string, unknown>> = {
  _class_name: 'EulerDiscreteScheduler',
  _diffusers_version: DIFFUSERS_VERSION,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  interpolation_type: 'linear',
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  rescale_betas_zero_snr: false,
  sample_max_value: 1.0,
  set_alpha_to_one: false,
  sigma_max: null,
  sigma_min: null,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: 'leading',
  timestep_type: 'discrete',
  trained_betas: null,
  use_karras_sigmas: false,
};

/**
 * The scheduler config: SDXL's, unless the file's `__metadata__` says otherwise — a JSON object under
 * `scheduler_config` (merged over SDXL's), or the prediction type as Stability's ModelSpec
 * (`modelspec.prediction_type`: epsilon / v) or kohya's trainer (`ss_v_parameterization`) record it.
 */
export function schedulerConfigFromMetadata(metadata: Readonly<Record<string, string>>, file: string): Record<string, unknown> {
  const config: Record<string, unknown> = { ...SDXL_SCHEDULER_CONFIG };
  const pt = metadata['modelspec.prediction_type'];
  if (pt === 'v' || pt === 'v_prediction') config.prediction_type = 'v_prediction';
  else if (pt === 'epsilon') config.prediction_type = 'epsilon';
  if (metadata.ss_v_parameterization === 'True' || metadata.ss_v_parameterization === 'true') config.prediction_type = 'v_prediction';
  const raw = metadata.scheduler_config;
  if (raw !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError('scheduler_config', raw.slice(0, 80), 'must hold a JSON object (a diffusers scheduler_config.json)', `${file} __metadata__`);
    }
    Object.assign(config, parsed);
  }
  return config;
}

/** model_index.json of an SDXL pipeline assembled from a single file. */
export function sdxlModelIndex(schedulerClass = String(SDXL_SCHEDULER_CONFIG._class_name)): Record<string, unknown> {
  return {
    _class_name: 'StableDiffusionXLPipeline',
    _diffusers_version: DIFFUSERS_VERSION,
    feature_extractor: [null, null],
    force_zeros_for_empty_prompt: true,
    image_encoder: [null, null],
    scheduler: ['diffusers', schedulerClass],
    text_encoder: ['transformers', 'CLIPTextModel'],
    text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    tokenizer_2: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  };
}
