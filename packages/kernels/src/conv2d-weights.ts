// Load-time re-layout of convolution weights. PyTorch stores OIHW [Cout, Cin, KH, KW]; conv2d reads
// OHWI [Cout, KH, KW, Cin]: row n of the implicit GEMM's B operand is then K = KH·KW·Cin contiguous
// values in the order the kernel walks an NHWC image (tap-major, channel-minor), exactly like a
// Linear weight [N, K] — a 1×1 conv weight needs no change at all.
import { InvalidArgumentError } from '@ssd/tensor';

/** The shape conv2d wants for a PyTorch OIHW weight shape: [Cout, KH, KW, Cin]. */
export function conv2dWeightShape(oihw: readonly number[]): number[] {
  if (oihw.length !== 4) throw new InvalidArgumentError(`conv2dWeightShape: expected an OIHW shape [Cout, Cin, KH, KW], got [${oihw.join(', ')}]`);
  const [o, i, h, w] = oihw;
  return [o, h, w, i];
}

/**
 * Re-lays OIHW host data (f32 values, or f16 bit patterns as a Uint16Array) as OHWI
 * [Cout, KH, KW, Cin]. Returns a new array of the same type and the new shape.
 */
export function conv2dWeightFromOIHW<T extends Float32Array | Uint16Array>(data: T, oihw: readonly number[]): { data: T; shape: number[] } {
  const shape = conv2dWeightShape(oihw);
  const [o, i, h, w] = oihw;
  const n = o * i * h * w;
  if (data.length !== n) throw new InvalidArgumentError(`conv2dWeightFromOIHW: ${data.length} values for OIHW shape [${oihw.join(', ')}] (${n} elements)`);
  const out = new (data.constructor as new (n: number) => T)(n);
  const taps = h * w;
  for (let co = 0; co < o; co++) {
    const src = co * i * taps;
    for (let ci = 0; ci < i; ci++) {
      for (let t = 0; t < taps; t++) out[src + t * i + ci] = data[src + ci * taps + t];
    }
  }
  return { data: out, shape };
}
