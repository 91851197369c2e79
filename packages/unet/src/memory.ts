// An up-front plan of a UNet forward's activation memory, from the config alone: the tensors some op
// must bind whole (attention's fused q/k/v and the up blocks' skip concatenations; GEMMs, norms and
// elementwise ops split into binding windows) —
// each must fit maxStorageBufferBindingSize — and an estimate of the peak activation bytes (the skip
// stack plus one block's working set). The pipeline checks it before a run, so an impossible size is
// a DeviceLimitError at once instead of a failure mid-run.
import type { UNetSpec } from './config.js';

export interface WholeBinding {
  what: string;
  bytes: number;
}

export interface UNetMemoryPlan {
  wholeBindings: WholeBinding[];
  /** Bytes of the skip stack at its fullest (end of the down path). */
  skipBytes: number;
  /** Estimated peak bytes of activations (not weights) during one forward. */
  peakActivationBytes: number;
}

/** `latentH`/`latentW`: the latent size (image / 8); `bytesPerElement`: 2 (f16) or 4 (f32). */
export function planUNetMemory(spec: UNetSpec, batch: number, latentH: number, latentW: number, bytesPerElement: number): UNetMemoryPlan {
  const el = bytesPerElement;
  const whole: WholeBinding[] = [];
  const skips: number[] = [];
  let h = latentH;
  let w = latentW;
  let largestAct = 0;
  const act = (c: number, hh = h, ww = w) => batch * hh * ww * c * el;
  skips.push(act(spec.blockOutChannels[0]));
  const down: { h: number; w: number }[] = [];
  spec.down.forEach((d, i) => {
    down.push({ h, w });
    for (let j = 0; j < d.numLayers; j++) {
      skips.push(act(d.outChannels));
      largestAct = Math.max(largestAct, act(d.outChannels));
      if (d.type === 'CrossAttnDownBlock2D') {
        whole.push({ what: `down_blocks.${i} self-attention q/k/v (${h}×${w} tokens × 3·${d.outChannels})`, bytes: act(3 * d.outChannels) });
      }
    }
    if (d.addDownsample) {
      h = Math.ceil(h / 2);
      w = Math.ceil(w / 2);
      skips.push(act(d.outChannels));
    }
  });
  if (spec.mid?.type === 'UNetMidBlock2DCrossAttn') {
    whole.push({ what: `mid_block self-attention q/k/v (${h}×${w} tokens × 3·${spec.mid.channels})`, bytes: act(3 * spec.mid.channels) });
  }
  const skipBytes = skips.reduce((a, b) => a + b, 0);
  // up path: each resnet concatenates [current, skip]
  let cur = spec.mid ? spec.mid.channels : spec.down[spec.down.length - 1].outChannels;
  const skipCh: number[] = [spec.blockOutChannels[0]];
  spec.down.forEach((d) => {
    for (let j = 0; j < d.numLayers; j++) skipCh.push(d.outChannels);
    if (d.addDownsample) skipCh.push(d.outChannels);
  });
  const res = [...down].reverse();
  spec.up.forEach((u, i) => {
    const { h: uh, w: uw } = res[i] ?? { h, w };
    // the up block runs at the resolution of the matching down block's output
    const bh = i === 0 ? h : uh;
    const bw = i === 0 ? w : uw;
    for (let j = 0; j < u.numLayers; j++) {
      const skip = skipCh.pop() ?? 0;
      whole.push({ what: `up_blocks.${i}.resnets.${j} skip concatenation (${bh}×${bw} × ${cur + skip})`, bytes: batch * bh * bw * (cur + skip) * el });
      largestAct = Math.max(largestAct, batch * bh * bw * (cur + skip) * el);
      cur = u.outChannels;
      if (u.type === 'CrossAttnUpBlock2D') {
        whole.push({ what: `up_blocks.${i} self-attention q/k/v (${bh}×${bw} tokens × 3·${u.outChannels})`, bytes: batch * bh * bw * 3 * u.outChannels * el });
      }
    }
  });
  // a block's working set: the concatenated input, two normalised copies, the conv outputs, the
  // feed-forward's 8C projection — about six of the largest activation
  return { wholeBindings: whole, skipBytes, peakActivationBytes: skipBytes + 6 * largestAct };
}
