// The work of one AutoencoderKL decode of an h × w latent (batch 1), counted from the parsed config as
// unet-flops.ts counts the UNet's: conv multiply-adds (direct-equivalent: Winograd's own work is less),
// the mid-block attention's projections (matmul) and its QKᵀ and PV over every latent pixel; 1 MAC = 2 FLOP.
import type { AutoencoderKLSpec } from '@ssd/vae';

export interface VaeWork {
  conv: number;
  matmul: number;
  attention: number;
  total: number;
}

export function vaeDecodeWork(spec: AutoencoderKLSpec, h: number, w: number): VaeWork {
  let conv = 0;
  let px = h * w;
  const mac = (pixels: number, cin: number, cout: number, k: number) => (conv += pixels * cin * cout * k * k);
  const resnet = (cin: number, cout: number) => {
    mac(px, cin, cout, 3);
    mac(px, cout, cout, 3);
    if (cin !== cout) mac(px, cin, cout, 1);
  };
  const rev = [...spec.blockOutChannels].reverse();
  if (spec.usePostQuantConv) mac(px, spec.latentChannels, spec.latentChannels, 1);
  mac(px, spec.latentChannels, rev[0], 3);
  resnet(rev[0], rev[0]);
  const c = rev[0];
  const matmul = spec.midBlockAttention ? 4 * px * c * c : 0;
  const attention = spec.midBlockAttention ? 2 * px * px * c : 0;
  resnet(rev[0], rev[0]);
  rev.forEach((cout, i) => {
    for (let j = 0; j <= spec.layersPerBlock; j++) resnet(j === 0 ? (i === 0 ? rev[0] : rev[i - 1]) : cout, cout);
    if (i < rev.length - 1) {
      px *= 4;
      mac(px, cout, cout, 3);
    }
  });
  mac(px, rev[rev.length - 1], spec.outChannels, 3);
  return { conv: 2 * conv, matmul: 2 * matmul, attention: 2 * attention, total: 2 * (conv + matmul + attention) };
}
