// float64 reference for conv2d on NHWC data with a PyTorch OIHW weight, written as the definition:
// out[b, oy, ox, co] = act(Σ_{ci, ky, kx} xu[b, oy·s + ky − pad_t, ox·s + kx − pad_l, ci] · w[co, ci, ky, kx] + bias) + residual,
// where xu is x nearest-upsampled by `upsample` and reads outside it are zero.
import { activationRef, type Activation } from '../../src/shader.js';

export interface Conv2dRefOptions {
  stride?: number;
  /** [top, left, bottom, right] */
  padding?: readonly [number, number, number, number];
  upsample?: number;
  /** [Cout] or [B, Cout] (perSampleBias) */
  bias?: ArrayLike<number>;
  perSampleBias?: boolean;
  activation?: Activation;
  residual?: ArrayLike<number>;
}

export function conv2dRef(x: ArrayLike<number>, xShape: readonly number[], wOIHW: ArrayLike<number>, wShape: readonly number[], o: Conv2dRefOptions = {}): { out: Float64Array; shape: number[] } {
  const [B, H, W, C] = xShape;
  const [N, wc, KH, KW] = wShape;
  if (wc !== C) throw new Error('conv2dRef: channel mismatch');
  const s = o.stride ?? 1;
  const u = o.upsample ?? 1;
  const [pt, pl, pb, pr] = o.padding ?? [0, 0, 0, 0];
  const Hu = H * u;
  const Wu = W * u;
  const Ho = Math.floor((Hu + pt + pb - KH) / s) + 1;
  const Wo = Math.floor((Wu + pl + pr - KW) / s) + 1;
  const act = activationRef(o.activation ?? 'none');
  const out = new Float64Array(B * Ho * Wo * N);
  for (let b = 0; b < B; b++) {
    for (let oy = 0; oy < Ho; oy++) {
      for (let ox = 0; ox < Wo; ox++) {
        for (let co = 0; co < N; co++) {
          let acc = 0;
          for (let ky = 0; ky < KH; ky++) {
            const iy = oy * s + ky - pt;
            if (iy < 0 || iy >= Hu) continue;
            for (let kx = 0; kx < KW; kx++) {
              const ix = ox * s + kx - pl;
              if (ix < 0 || ix >= Wu) continue;
              const px = ((b * H + Math.floor(iy / u)) * W + Math.floor(ix / u)) * C;
              for (let ci = 0; ci < C; ci++) acc += x[px + ci] * wOIHW[((co * C + ci) * KH + ky) * KW + kx];
            }
          }
          if (o.bias) acc += o.bias[o.perSampleBias ? b * N + co : co];
          acc = act(acc);
          const i = ((b * Ho + oy) * Wo + ox) * N + co;
          if (o.residual) acc += o.residual[i];
          out[i] = acc;
        }
      }
    }
  }
  return { out, shape: [B, Ho, Wo, N] };
}
