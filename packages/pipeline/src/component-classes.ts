// The classes model_index.json may name for the components an SDXL pipeline builds. diffusers loads
// each component with the class the index names; we build fixed ones, so an index naming another
// class (a UNet2DModel, a T5 encoder, a VQModel) is a ConfigError naming the component before
// anything is loaded, not a model built from a config it does not fit.
import { ConfigError, type ModelIndex } from '@ssd/tensor';

/** Component → the class names we can load for it (diffusers' and transformers' names). */
export const SDXL_COMPONENT_CLASSES: Readonly<Record<string, readonly string[]>> = {
  unet: ['UNet2DConditionModel'],
  text_encoder: ['CLIPTextModel'],
  text_encoder_2: ['CLIPTextModelWithProjection'],
  vae: ['AutoencoderKL', 'AutoencoderTiny'],
  tokenizer: ['CLIPTokenizer', 'CLIPTokenizerFast'],
  tokenizer_2: ['CLIPTokenizer', 'CLIPTokenizerFast'],
};

/**
 * ConfigError unless every component of `index` that we load names a class we can load for it.
 * Components the index leaves out ([null, null] or absent) and ones we do not load (scheduler,
 * feature_extractor, image_encoder) are not checked here. `file` names the index in the message.
 */
export function checkComponentClasses(index: ModelIndex, file = 'model_index.json'): void {
  for (const [component, allowed] of Object.entries(SDXL_COMPONENT_CLASSES)) {
    const entry = index.components[component];
    if (!entry) continue;
    if (!allowed.includes(entry[1])) {
      throw new ConfigError(component, entry, `this pipeline loads ${component} as ${allowed.join(' or ')}, not ${entry[1]}`, file);
    }
  }
}
