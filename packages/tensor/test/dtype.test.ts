// Exhaustive f16 / bf16 conversion checks against an independent oracle (a sorted table of every
// finite f16 value and a nearest-value search with ties to even).
import { describe, expect, it } from 'vitest';
import { bf16ArrayToF16, bf16ArrayToF32, bf16BitsToF32, f16ArrayToF32, f16BitsToF32, f32ArrayToF16, f32ToF16Bits } from '@ssd/tensor';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Independent f16 decoder: sign · 2^(e−15) · (1 + m/1024), subnormals 2^−14 · m/1024. */
function decodeF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (m / 1024);
  if (e === 31) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

// every non-negative finite f16 value in order: bits 0x0000..0x7bff are monotone
const positives = Array.from({ length: 0x7c00 }, (_, h) => decodeF16(h));
const MAX_F16 = 65504;

/** Nearest f16 bits for a finite number, ties to even mantissa, overflow to inf, by search. */
function oracleF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // IEEE: round to nearest with an unbounded exponent; values ≥ MAX + half ulp (2^15·(2 − 2^−11)) overflow
  if (a >= MAX_F16 + 16) return sign | 0x7c00;
  let lo = 0;
  let hi = positives.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (positives[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - positives[lo];
  const dh = positives[hi] - a;
  const pick = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
  return sign | pick;
}

describe('f16 ⇄ f32', () => {
  it('decodes all 65,536 f16 values exactly', () => {
    for (let h = 0; h < 65536; h++) {
      const want = decodeF16(h);
      const got = f16BitsToF32(h);
      if (Number.isNaN(want)) expect(Number.isNaN(got)).toBe(true);
      else expect(Object.is(got, want) || (want === 0 && got === 0 && Object.is(got, h & 0x8000 ? -0 : 0))).toBe(true);
    }
  });

  it('round-trips all 65,536 f16 values (NaN stays NaN, ±0 and ±inf kept)', () => {
    for (let h = 0; h < 65536; h++) {
      const back = f32ToF16Bits(f16BitsToF32(h));
      const isNan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNan) expect((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0).toBe(true);
      else expect(back).toBe(h);
    }
  });

  it('rounds every midpoint between neighbouring f16 values to even, and its f32 neighbours to nearest', () => {
    for (let h = 0; h < 0x7bff; h++) {
      const lo = positives[h];
      const hi = positives[h + 1];
      f32[0] = (lo + hi) / 2; // exact in f32: f16 has 11 significant bits
      const mid = u32[0];
      expect(f32ToF16Bits(f32[0])).toBe(h % 2 === 0 ? h : h + 1);
      u32[0] = mid - 1;
      expect(f32ToF16Bits(f32[0])).toBe(h);
      u32[0] = mid + 1;
      expect(f32ToF16Bits(f32[0])).toBe(h + 1);
      f32[0] = -(lo + hi) / 2;
      expect(f32ToF16Bits(f32[0])).toBe(0x8000 | (h % 2 === 0 ? h : h + 1));
    }
  });

  it('matches the search oracle on 200,000 random f32 values across the whole range', () => {
    let seed = 12345;
    for (let i = 0; i < 200_000; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      u32[0] = seed;
      const x = f32[0];
      const got = f32ToF16Bits(x);
      if (Number.isNaN(x)) {
        expect((got & 0x7c00) === 0x7c00 && (got & 0x3ff) !== 0).toBe(true);
        continue;
      }
      const want = Number.isFinite(x) ? oracleF16(x) : (x < 0 ? 0x8000 : 0) | 0x7c00;
      if (got !== want) throw new Error(`f32 ${x} (bits ${seed.toString(16)}): got ${got.toString(16)}, want ${want.toString(16)}`);
    }
  });

  it('handles the edges: overflow, subnormals, underflow to ±0', () => {
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519.99)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // the tie rounds to even = inf
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(-1e6)).toBe(0xfc00);
    expect(f32ToF16Bits(2 ** -24)).toBe(1);
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal: even = 0
    expect(f32ToF16Bits(2 ** -25 * 1.0001)).toBe(1);
    expect(f32ToF16Bits(-(2 ** -26))).toBe(0x8000);
    expect(f32ToF16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the smallest normal
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
  });

  it('converts arrays both ways', () => {
    const a = new Float32Array([0, -1.5, 3.14159, 65504, 1e-7, -Infinity]);
    const back = f16ArrayToF32(f32ArrayToF16(a));
    expect([...back]).toEqual([0, -1.5, f16BitsToF32(f32ToF16Bits(3.14159)), 65504, f16BitsToF32(f32ToF16Bits(1e-7)), -Infinity]);
  });
});

describe('bf16', () => {
  it('all 65,536 bf16 values widen exactly to f32 and narrow to the nearest f16', () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const asF32 = bf16ArrayToF32(bits);
    const asF16 = bf16ArrayToF16(bits);
    for (let b = 0; b < 65536; b++) {
      u32[0] = b << 16;
      const want = f32[0];
      if (Number.isNaN(want)) {
        expect(Number.isNaN(asF32[b])).toBe(true);
        expect(Number.isNaN(bf16BitsToF32(b))).toBe(true);
        continue;
      }
      expect(Object.is(asF32[b], want)).toBe(true);
      expect(Object.is(bf16BitsToF32(b), want)).toBe(true);
      expect(asF16[b]).toBe(Number.isFinite(want) ? oracleF16(want) : (want < 0 ? 0x8000 : 0) | 0x7c00);
    }
  });
});
