// Opening an autoencoder folder, shared by AutoencoderKL and AutoencoderTiny: the load options, the
// config read and parsed before any weight, the dtype chosen from the options, the config's
// force_upcast and the device, and the weight store without the half `parts` leaves out.
import { ConfigError, InvalidArgumentError, openModelSource, readComponentConfig, WeightStore, type DType, type GpuContext, type LoadProgress, type ModelSource } from '@ssd/tensor';
import type { ConvAlgorithm } from '@ssd/kernels';

export interface AutoencoderLoadOptions {
  context: GpuContext;
  /** Default: 'vae' when the source has vae/config.json, else the source's root. */
  subfolder?: string;
  /**
   * 'auto' (default): f32 when the config sets force_upcast (the SDXL VAE overflows in f16), else
   * f16 when the device has shader-f16. 'f16' on a force_upcast VAE is allowed, with a notice: an
   * overflow then raises NumericalError.
   */
  dtype?: 'auto' | 'f16' | 'f32';
  /** Weight variant to prefer, e.g. 'fp16' (falls back to the default weights with a notice). */
  variant?: string;
  /** Load only one half: 'decoder' (txt2img) or 'encoder'. Default: both. */
  parts?: 'both' | 'decoder' | 'encoder';
  /**
   * AutoencoderKL: the 3×3 stride-1 convs' algorithm. 'auto' (default): the adapter's table
   * (@ssd/kernels chooseConvAlgorithm — Winograd on CPU adapters, whose transformed weights take 16/9×
   * or 4× the direct ones); 'direct', 'winograd2' or 'winograd4' for every such layer (tests, bench).
   */
  convAlgorithm?: ConvAlgorithm | 'auto';
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
  onNotice?: (message: string) => void;
}

/**
 * What both autoencoders' fromPretrained do before building: check the options, read and parse the
 * config (ConfigError naming the file), choose the dtype and open the weight files, leaving out the
 * keys of the half `parts` skips.
 */
export async function openAutoencoder<C, S extends { forceUpcast: boolean }>(
  source: string | ModelSource,
  options: AutoencoderLoadOptions,
  name: string,
  parse: (config: C, file: string) => S,
  ignore: { decoder: RegExp[]; encoder: RegExp[] },
): Promise<{ ctx: GpuContext; config: C; store: WeightStore; parts: 'both' | 'decoder' | 'encoder' }> {
  const ctx = options.context;
  const parts = checkParts(options.parts, name);
  const src = openModelSource(source);
  const subfolder = options.subfolder ?? ((await src.exists('vae/config.json')) ? 'vae' : '');
  const config = (await readComponentConfig(src, subfolder)) as C;
  const spec = parse(config, `${src.description}/${subfolder ? subfolder + '/' : ''}config.json`);
  const dtype = chooseDtype(ctx, options, spec.forceUpcast, name);
  // the half loaded with `parts` leaves out the other half's keys
  const skip = parts === 'decoder' ? ignore.decoder : parts === 'encoder' ? ignore.encoder : [];
  const store = await WeightStore.open(ctx, src, subfolder, { dtype, variant: options.variant, ignore: skip, onNotice: options.onNotice });
  return { ctx, config, store, parts };
}

/** The load option `parts`, checked: a misspelt value must not quietly load both halves. */
export function checkParts(parts: AutoencoderLoadOptions['parts'], name: string): 'both' | 'decoder' | 'encoder' {
  const p = parts ?? 'both';
  if (p !== 'both' && p !== 'decoder' && p !== 'encoder') throw new InvalidArgumentError(`${name}: parts must be 'both', 'decoder' or 'encoder', got ${JSON.stringify(p)}`);
  return p;
}

/** The model dtype from the options, the config's force_upcast and the device. */
export function chooseDtype(ctx: GpuContext, options: Pick<AutoencoderLoadOptions, 'dtype' | 'onNotice'>, forceUpcast: boolean, name: string): DType {
  const asked = options.dtype ?? 'auto';
  const notice = options.onNotice ?? console.warn;
  if (asked !== 'auto' && asked !== 'f16' && asked !== 'f32') throw new ConfigError('dtype', asked, "must be 'auto', 'f16' or 'f32'");
  if (asked === 'f32') return 'f32';
  if (asked === 'auto' && forceUpcast) return 'f32';
  if (!ctx.f16) {
    if (asked === 'f16') notice(`${name}: the device has no shader-f16, running in f32`);
    return 'f32';
  }
  if (asked === 'f16' && forceUpcast) {
    notice(`${name}: running in f16 although the config sets force_upcast (this VAE may overflow in f16; a NumericalError names the stage if it does)`);
  }
  return 'f16';
}
