// One entry point for "a VAE folder": AutoencoderKL or AutoencoderTiny, chosen by config.json's
// _class_name, as diffusers' AutoModel-style loading would.
import { ConfigError, openModelSource, readComponentConfig, type ModelSource } from '@ssd/tensor';
import { AutoencoderKL } from './autoencoder-kl.js';
import type { AutoencoderLoadOptions } from './open-autoencoder.js';
import { AutoencoderTiny } from './autoencoder-tiny.js';

export async function loadAutoencoder(source: string | ModelSource, options: AutoencoderLoadOptions): Promise<AutoencoderKL | AutoencoderTiny> {
  const src = openModelSource(source);
  const subfolder = options.subfolder ?? ((await src.exists('vae/config.json')) ? 'vae' : '');
  const config = await readComponentConfig(src, subfolder);
  const cls = config._class_name ?? 'AutoencoderKL';
  if (cls === 'AutoencoderKL') return AutoencoderKL.fromPretrained(src, { ...options, subfolder });
  if (cls === 'AutoencoderTiny') return AutoencoderTiny.fromPretrained(src, { ...options, subfolder });
  throw new ConfigError('_class_name', cls, 'not an autoencoder this package runs (AutoencoderKL or AutoencoderTiny)', `${src.description}/${subfolder ? subfolder + '/' : ''}config.json`);
}
