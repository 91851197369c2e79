// Several model sources read as one: each path (and each component's tensors) comes from the first
// layer that has it. How a single-file checkpoint gets what it lacks — a UNet-only file's text
// encoders and VAE from a folder, the tokenizer files from the package that ships them.

import { isTensorModelSource, openComponentTensors, type ComponentTensorOptions, type TensorModelSource } from './component-tensors.js';
import type { ByteSource } from './byte-source.js';
import { ModelLoadError } from './errors.js';
import type { ModelSource } from './model-source.js';
import type { TensorSource } from './tensor-source.js';

export class LayeredModelSource implements TensorModelSource {
  readonly description: string;

  constructor(readonly layers: readonly ModelSource[]) {
    this.description = layers.map((l) => l.description).join(' + ');
  }

  async exists(path: string): Promise<boolean> {
    for (const l of this.layers) if (await l.exists(path)) return true;
    return false;
  }

  private async layerWith(path: string): Promise<ModelSource | null> {
    for (const l of this.layers) if (await l.exists(path)) return l;
    return null;
  }

  async readText(path: string): Promise<string> {
    const l = await this.layerWith(path);
    if (!l) throw new ModelLoadError(`file not found: ${path} in ${this.description}`);
    return l.readText(path);
  }

  async open(path: string): Promise<ByteSource> {
    const l = await this.layerWith(path);
    if (!l) throw new ModelLoadError(`file not found: ${path} in ${this.description}`);
    return l.open(path);
  }

  /** The component's tensors from the first layer holding its config (a component is never split). */
  async openTensors(subfolder: string, options?: ComponentTensorOptions): Promise<TensorSource> {
    for (const l of this.layers) {
      const holds = isTensorModelSource(l) ? await l.exists(`${subfolder}/config.json`) : (await l.exists(`${subfolder}/config.json`)) || (await l.exists(subfolder));
      if (holds) return openComponentTensors(l, subfolder, options);
    }
    throw new ModelLoadError(`no "${subfolder}" component in ${this.description}`);
  }
}
