// The tiny autoencoder's modules (diffusers models/autoencoders/vae.py EncoderTiny, DecoderTiny;
// AutoencoderTinyBlock in unet_2d_blocks.py), NHWC: plain lists of ReLU convs and residual blocks, run
// layer by layer by runLayers (which the exact tiled decode also sweeps one layer at a time).
// AutoencoderTiny (autoencoder-tiny.ts) wraps them with the scaling, clamp and tiling.
import { withScopeSync, type Tensor, type WeightStore } from '@ssd/tensor';
import { Conv2d, relu } from '@ssd/kernels';
import type { AutoencoderTinySpec } from './config.js';
import type { Probe } from './vae-blocks.js';

/** relu(conv.4(relu(conv.2(relu(conv.0(x))))) + x): 3×3 convs with bias, identity skip (equal widths). */
export class AutoencoderTinyBlock {
  readonly conv: [Conv2d, Conv2d, Conv2d];

  constructor(store: WeightStore, prefix: string, channels: number) {
    const c = (i: number) => new Conv2d(store, `${prefix}.conv.${i}`, channels, channels, { kernelSize: 3, padding: 1 });
    this.conv = [c(0), c(2), c(4)];
  }

  forward(x: Tensor): Tensor {
    // ReLU is a separate pass: the conv epilogue applies its activation before the residual, and
    // offers no ReLU (see @ssd/kernels image.ts)
    return withScopeSync((s) => {
      let h = s.then(s.track(this.conv[0].forward(x)), relu);
      h = s.then(h, (t) => this.conv[1].forward(t));
      h = s.then(h, relu);
      h = s.then(h, (t) => this.conv[2].forward(t, { residual: x }));
      return s.keep(s.then(h, relu));
    });
  }
}

export type Layer = { kind: 'conv'; conv: Conv2d; relu: boolean; upsample: boolean } | { kind: 'block'; block: AutoencoderTinyBlock };

/** decoder.layers.*: Conv, ReLU, then per stage blocks, (Upsample, Conv no bias) or the final Conv. */
export class DecoderTiny {
  readonly layers: Layer[] = [];

  constructor(store: WeightStore, prefix: string, spec: AutoencoderTinySpec) {
    const ch = spec.decoderBlockOutChannels;
    let idx = 0;
    const key = () => `${prefix}.layers.${idx++}`;
    this.layers.push({ kind: 'conv', conv: new Conv2d(store, key(), spec.latentChannels, ch[0], { kernelSize: 3, padding: 1 }), relu: true, upsample: false });
    idx++; // layers.1: ReLU
    spec.numDecoderBlocks.forEach((n, i) => {
      for (let j = 0; j < n; j++) this.layers.push({ kind: 'block', block: new AutoencoderTinyBlock(store, key(), ch[i]) });
      const last = i === spec.numDecoderBlocks.length - 1;
      if (!last) idx++; // nn.Upsample(scale_factor=2, mode="nearest"), fused into the next conv's gather
      const conv = new Conv2d(store, key(), ch[i], last ? spec.outChannels : ch[i], { kernelSize: 3, padding: 1, bias: last });
      this.layers.push({ kind: 'conv', conv, relu: false, upsample: !last });
    });
  }

  /** Clamped latents (tanh(z/3)·3, done by the caller) → the decoder's [0, 1]-range output, model dtype. */
  forward(x: Tensor, probe?: Probe): Tensor {
    return runLayers(this.layers, x, probe);
  }
}

/** encoder.layers.*: per stage a Conv (stride 2 without bias after the first), blocks; a final Conv. */
export class EncoderTiny {
  readonly layers: Layer[] = [];

  constructor(store: WeightStore, prefix: string, spec: AutoencoderTinySpec) {
    const ch = spec.encoderBlockOutChannels;
    let idx = 0;
    const key = () => `${prefix}.layers.${idx++}`;
    spec.numEncoderBlocks.forEach((n, i) => {
      const conv = i === 0
        ? new Conv2d(store, key(), spec.inChannels, ch[0], { kernelSize: 3, padding: 1 })
        : new Conv2d(store, key(), ch[i], ch[i], { kernelSize: 3, padding: 1, stride: 2, bias: false });
      this.layers.push({ kind: 'conv', conv, relu: false, upsample: false });
      for (let j = 0; j < n; j++) this.layers.push({ kind: 'block', block: new AutoencoderTinyBlock(store, key(), ch[i]) });
    });
    const last = ch[ch.length - 1];
    this.layers.push({ kind: 'conv', conv: new Conv2d(store, key(), last, spec.latentChannels, { kernelSize: 3, padding: 1 }), relu: false, upsample: false });
  }

  /** The image mapped to [0, 1] (by the caller) → raw latents, model dtype. */
  forward(x: Tensor, probe?: Probe): Tensor {
    return runLayers(this.layers, x, probe);
  }
}

/** The layers in order on x (not freed; each other intermediate is, once the next layer has read it). */
export function runLayers(layers: readonly Layer[], x: Tensor, probe?: Probe): Tensor {
  return withScopeSync((s) => {
    let h = x;
    for (const layer of layers) {
      let next: Tensor;
      if (layer.kind === 'block') next = s.track(layer.block.forward(h));
      else {
        next = s.track(layer.conv.forward(h, layer.upsample ? { upsample: 2 } : {}));
        if (layer.relu) next = s.then(next, relu);
      }
      if (s.owns(h)) s.drop(h); // not x: the caller's
      h = next;
      probe?.(layer.kind === 'block' ? layerName(layer.block.conv[0].prefix) : layerName(layer.conv.prefix), h);
    }
    return s.owns(h) ? s.keep(h) : h;
  });
}

/** "decoder.layers.4.conv.0" → "layers.4" (the module whose output this is). */
function layerName(prefix: string): string {
  const m = /layers\.\d+/.exec(prefix);
  return m ? m[0] : prefix;
}
