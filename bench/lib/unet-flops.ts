// The work of one UNet evaluation at a given latent size, counted from the config as
// ../shared/reference/architecture.md §6 counts it: conv and linear multiply-adds, plus attention's
// QKᵀ and PV (N·M·C each); 1 MAC = 2 FLOP. Reproduces §6 at 128² (SSD-1B 2103.9 GMAC, Vega 1411.2,
// SDXL 3380.6 per sample). Split by kind so a profile can be read as achieved FLOP/s per kind.
import type { UNetSpec } from '@ssd/unet';

export interface UNetWork {
  /** FLOP per kind for the whole batch. */
  conv: number;
  matmul: number;
  attention: number;
  total: number;
}

const TEXT_TOKENS = 77;

export function unetWork(spec: UNetSpec, batch: number, latentH: number, latentW: number): UNetWork {
  let conv = 0;
  let matmul = 0;
  let attention = 0;
  const ted = spec.timeEmbedDim;
  const convMac = (pixels: number, cin: number, cout: number, k: number) => (conv += pixels * cin * cout * k * k);
  const resnet = (pixels: number, cin: number, cout: number) => {
    convMac(pixels, cin, cout, 3);
    convMac(pixels, cout, cout, 3);
    if (cin !== cout) convMac(pixels, cin, cout, 1);
    matmul += ted * cout; // time_emb_proj, once per sample
  };
  const transformer = (pixels: number, c: number, depth: number, crossDim: number, heads: number) => {
    const proj = spec.useLinearProjection ? 2 * pixels * c * c : 0;
    matmul += proj;
    if (!spec.useLinearProjection) conv += 2 * pixels * c * c;
    void heads; // QKᵀ and PV cost N·M·(heads·64) = N·M·C whatever the split
    for (let b = 0; b < depth; b++) {
      matmul += 4 * pixels * c * c; // attn1 q, k, v, out
      matmul += 2 * pixels * c * c + 2 * TEXT_TOKENS * crossDim * c; // attn2 q, out; k, v on the 77 text tokens
      matmul += pixels * c * 8 * c + pixels * 4 * c * c; // GEGLU proj (C→8C) and net.2 (4C→C)
      attention += 2 * pixels * pixels * c; // self: QKᵀ + PV
      attention += 2 * pixels * TEXT_TOKENS * c; // cross
    }
  };
  let h = latentH;
  let w = latentW;
  const boc = spec.blockOutChannels;
  convMac(h * w, spec.inChannels, boc[0], 3);
  matmul += boc[0] * ted + ted * ted;
  if (spec.addition) matmul += spec.addition.inputDim * ted + ted * ted;
  for (const d of spec.down) {
    for (let j = 0; j < d.numLayers; j++) {
      resnet(h * w, j === 0 ? d.inChannels : d.outChannels, d.outChannels);
      if (d.type === 'CrossAttnDownBlock2D') transformer(h * w, d.outChannels, d.depths[j], d.crossAttentionDim, d.heads);
    }
    if (d.addDownsample) {
      h = Math.ceil(h / 2);
      w = Math.ceil(w / 2);
      convMac(h * w, d.outChannels, d.outChannels, 3);
    }
  }
  if (spec.mid) {
    resnet(h * w, spec.mid.channels, spec.mid.channels);
    if (spec.mid.type === 'UNetMidBlock2DCrossAttn') {
      transformer(h * w, spec.mid.channels, spec.mid.depth, spec.mid.crossAttentionDim, spec.mid.heads);
      resnet(h * w, spec.mid.channels, spec.mid.channels);
    }
  }
  for (const u of spec.up) {
    for (let j = 0; j < u.numLayers; j++) {
      const skip = j === u.numLayers - 1 ? u.inChannels : u.outChannels;
      resnet(h * w, (j === 0 ? u.prevOutputChannels : u.outChannels) + skip, u.outChannels);
      if (u.type === 'CrossAttnUpBlock2D') transformer(h * w, u.outChannels, u.depths[j], u.crossAttentionDim, u.heads);
    }
    if (u.addUpsample) {
      h *= 2;
      w *= 2;
      convMac(h * w, u.outChannels, u.outChannels, 3);
    }
  }
  convMac(h * w, boc[0], spec.outChannels, 3);
  const k = 2 * batch;
  return { conv: k * conv, matmul: k * matmul, attention: k * attention, total: k * (conv + matmul + attention) };
}

export type LayerKind = 'matmul' | 'conv' | 'attention' | 'norm' | 'other';

/** The layer kind of a profiler dispatch label (`<family>.<variant>[…]`, see packages/kernels). */
export function layerKind(label: string): LayerKind {
  if (/^conv2d/.test(label)) return 'conv';
  if (/^(linear|matmul|gemm)/.test(label)) return 'matmul';
  if (/^(attention|softmax)/.test(label)) return 'attention';
  if (/norm/.test(label)) return 'norm';
  return 'other';
}

/** A label without its specialisation (`group_norm.stats[f16 v4]` → `group_norm.stats`). */
export function labelFamily(label: string): string {
  return label.replace(/\[.*$/, '').replace(/ window .*$/, '').trim();
}
