// torch's normal_fill for float32 tensors of ≥ 16 elements (aten/src/ATen/native/cpu/DistributionTemplates.h):
// all uniforms are drawn first, then Box–Muller runs on blocks of 16 (u1 = 1 − data[j], u2 = data[j+8]); a
// size not divisible by 16 redraws 16 fresh uniforms for the last 16 elements and transforms them again.
import { logAvx, sinCosAvx } from './avx-mathfun.js';
import { cosfGlibc, logfGlibc, sinfGlibc } from './glibc-mathf.js';

/**
 * Which compiled normal_fill to reproduce. 'avx2': normal_fill_AVX2 (x86-64 CPUs with AVX2 — what
 * diffusers users on PCs get, and what the reference fixtures were made with). 'default': the scalar
 * normal_fill with glibc's logf/cosf/sinf (ATEN_CPU_CAPABILITY=default, non-AVX2 x86-64 Linux builds).
 */
export type NormalFillPath = 'avx2' | 'default';

const f32 = Math.fround;
// normal_fill_AVX2 broadcasts 2π as a float; the scalar path multiplies in double and rounds.
const TWO_PI_F32 = f32(2 * Math.PI);

/** Box–Muller on data[off..off+16) in place, as normal_fill_16_AVX2 (std 1, mean 0) computes it. */
function fill16Avx2(data: Float32Array, off: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f32(1 - data[off + j]);
    const u2 = data[off + j + 8];
    const radius = f32(Math.sqrt(f32(-2 * logAvx(u1))));
    const theta = f32(TWO_PI_F32 * u2);
    const [sin, cos] = sinCosAvx(theta);
    // _mm256_fmadd_ps(n, std, mean) with std = 1, mean = 0 is exact: n + 0.
    data[off + j] = f32(radius * cos) + 0;
    data[off + j + 8] = f32(radius * sin) + 0;
  }
}

/** Box–Muller on data[off..off+16) in place, as the scalar normal_fill_16<float> computes it. */
function fill16Default(data: Float32Array, off: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f32(1 - data[off + j]);
    const u2 = data[off + j + 8];
    const radius = f32(Math.sqrt(f32(-2 * logfGlibc(u1))));
    const theta = f32(2 * Math.PI * u2); // 2.0f * c10::pi<double> * u2, in double, then to float
    data[off + j] = f32(radius * cosfGlibc(theta));
    data[off + j + 8] = f32(radius * sinfGlibc(theta));
  }
}

/**
 * Fills `out` (length ≥ 16) with standard normals. `uniform()` must return torch's float uniform
 * ((u32 & 0xffffff)·2^-24), consuming one 32-bit draw each.
 */
export function normalFill(out: Float32Array, uniform: () => number, path: NormalFillPath): void {
  const size = out.length;
  const fill16 = path === 'avx2' ? fill16Avx2 : fill16Default;
  for (let i = 0; i < size; i++) out[i] = uniform();
  for (let i = 0; i + 16 <= size; i += 16) fill16(out, i);
  if (size % 16 !== 0) {
    const off = size - 16;
    for (let i = 0; i < 16; i++) out[off + i] = uniform();
    fill16(out, off);
  }
}
