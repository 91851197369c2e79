// The reverse mapping: a diffusers pipeline's component tensors under the SGM names diffusers'
// scripts/convert_diffusers_to_original_sdxl.py (v0.26.3) gives them — key for key, so a file written
// from them loads wherever Stability's, A1111's or ComfyUI's loaders expect an SDXL checkpoint. The
// UNet numbering follows the actual block structure (that script hard-codes SDXL's; for SDXL, SSD-1B
// and Vega the two agree).

import { ConfigError } from '../errors.js';
import { reshapedEntry, type TensorEntry } from '../tensor-source.js';
import { SGM_PREFIXES, type SdxlComponent } from './checkpoint-kind.js';
import { openClipFromDiffusers } from './text-encoder-keys.js';
import { keyRenamer, layoutFromDiffusersKeys, unetModulePairs } from './unet-layout.js';
import { VAE_CONV_AS_LINEAR_DIFFUSERS, vaeKeyRenamer, vaeLayoutFromDiffusersKeys, vaeModulePairs } from './vae-keys.js';

/** One component's tensors (diffusers names) → SGM names with the component's prefix. */
export function componentToSgm(component: SdxlComponent, entries: ReadonlyMap<string, TensorEntry>): Map<string, TensorEntry> {
  const prefix = SGM_PREFIXES[component];
  const out = new Map<string, TensorEntry>();
  const put = (k: string, e: TensorEntry) => out.set(prefix + k, e);
  const keys = [...entries.keys()];
  if (component === 'text_encoder') {
    for (const [k, e] of entries) put(k, e);
  } else if (component === 'text_encoder_2') {
    for (const [k, e] of openClipFromDiffusers(entries)) put(k, e);
  } else {
    const unknown: string[] = [];
    const renamer = component === 'unet' ? keyRenamer(unetModulePairs(layoutFromDiffusersKeys(keys)), 'sgm') : vaeKeyRenamer(vaeModulePairs(vaeLayoutFromDiffusersKeys(keys)), 'sgm');
    for (const [k, e] of entries) {
      const name = renamer(k);
      if (name === null) {
        unknown.push(k);
        continue;
      }
      // the VAE's mid-attention linears are 1×1 convs in LDM files (reshape_weight_for_sd)
      put(name, component === 'vae' && VAE_CONV_AS_LINEAR_DIFFUSERS.test(k) && e.shape.length === 2 ? reshapedEntry(e, [...e.shape, 1, 1]) : e);
    }
    if (unknown.length) {
      throw new ConfigError(component, unknown.slice(0, 5), `${unknown.length} tensors have no place in an SGM checkpoint (not an SDXL-family ${component === 'unet' ? 'UNet' : 'VAE'}?)`, entries.values().next().value?.file);
    }
  }
  return out;
}

/** Every component's tensors under SGM names, sorted by name (as safetensors' writers order them). */
export function pipelineToSgm(components: Partial<Record<SdxlComponent, ReadonlyMap<string, TensorEntry>>>): [string, TensorEntry][] {
  const all = new Map<string, TensorEntry>();
  for (const [c, entries] of Object.entries(components) as [SdxlComponent, ReadonlyMap<string, TensorEntry>][]) {
    for (const [k, e] of componentToSgm(c, entries)) all.set(k, e);
  }
  return [...all.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
