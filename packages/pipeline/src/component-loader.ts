// Loading one component of an SDXL pipeline with the pipeline's dtype, weight variant and per-component
// progress: the tokenizers, both text encoders (classes as model_index.json names them), the UNet and
// the VAE (through @ssd/vae's loadAutoencoder), each from its own source.
import { allInOrder, type GpuContext, type LoadProgress, type ModelSource } from '@ssd/tensor';
import { CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer } from '@ssd/clip';
import { UNet2DConditionModel } from '@ssd/unet';
import { loadAutoencoder } from '@ssd/vae';
import type { ComponentSource, ComponentsOptions, TextEncoders, Vae } from './component-types.js';

/** Loads one component of a pipeline folder with the pipeline's dtype, variant and progress reporting. */
export class SdxlComponentsLoader {
  constructor(
    private readonly ctx: GpuContext,
    private readonly source: ModelSource,
    private readonly unetSource: ComponentSource,
    private readonly vaeSource: ComponentSource,
    private readonly dtype: 'f16' | 'f32',
    private readonly o: Readonly<ComponentsOptions>,
  ) {}

  private common(component: string, signal?: AbortSignal) {
    return { context: this.ctx, variant: this.o.variant, signal, onNotice: this.o.onNotice, onProgress: (p: LoadProgress) => this.o.onLoadProgress?.({ ...p, component }) };
  }

  tokenizers(): Promise<[CLIPTokenizer, CLIPTokenizer]> {
    return allInOrder<[CLIPTokenizer, CLIPTokenizer]>([CLIPTokenizer.fromPretrained(this.source, 'tokenizer'), CLIPTokenizer.fromPretrained(this.source, 'tokenizer_2')]);
  }

  async textEncoders(signal?: AbortSignal): Promise<TextEncoders> {
    const te1 = await CLIPTextModel.fromPretrained(this.source, 'text_encoder', { ...this.common('text_encoder', signal), dtype: this.dtype });
    try {
      const te2 = await CLIPTextModelWithProjection.fromPretrained(this.source, 'text_encoder_2', { ...this.common('text_encoder_2', signal), dtype: this.dtype });
      return [te1, te2];
    } catch (e) {
      te1.dispose();
      throw e;
    }
  }

  unet(signal?: AbortSignal): Promise<UNet2DConditionModel> {
    return UNet2DConditionModel.fromPretrained(this.unetSource.source, { ...this.common('unet', signal), subfolder: this.unetSource.subfolder, dtype: this.dtype });
  }

  /**
   * An AutoencoderKL or AutoencoderTiny folder (chosen by its config, @ssd/vae's loadAutoencoder);
   * `parts` loads only the decoder or the encoder. In f32 pipelines the VAE runs in f32; in f16 ones it
   * follows its config (f32 when force_upcast, as the SDXL VAE overflows in f16).
   */
  vae(signal: AbortSignal | undefined, parts: 'both' | 'decoder' | 'encoder'): Promise<Vae> {
    return loadAutoencoder(this.vaeSource.source, { ...this.common('vae', signal), subfolder: this.vaeSource.subfolder, parts, dtype: this.dtype === 'f32' ? 'f32' : 'auto' });
  }
}
