// The 32-bit Mersenne Twister exactly as PyTorch's CPU generator runs it (ATen core/MT19937RNGEngine.h):
// seeded with the low 32 bits of the seed by Knuth's linear recurrence, 624-word state, standard tempering.
// Its output stream equals std::mt19937's for the same 32-bit seed.

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/** mt19937 with torch's seeding; `nextU32()` is torch's `CPUGeneratorImpl::random()`. */
export class MT19937 {
  private readonly state = new Uint32Array(N);
  private next = 0;
  private left = 1;

  constructor(seed32: number) {
    this.seed(seed32);
  }

  /** Re-seeds with a 32-bit unsigned value (torch passes `seed & 0xffffffff`). */
  seed(seed32: number): void {
    const s = this.state;
    s[0] = seed32 >>> 0;
    for (let j = 1; j < N; j++) {
      const prev = s[j - 1];
      // 1812433253 * (prev ^ (prev >> 30)) + j, in uint32 arithmetic.
      s[j] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + j) >>> 0;
    }
    this.left = 1;
    this.next = 0;
  }

  /** The next tempered 32-bit output, as an unsigned number. */
  nextU32(): number {
    if (--this.left === 0) this.twist();
    let y = this.state[this.next++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** A copy with the same position in the stream. */
  clone(): MT19937 {
    const c = new MT19937(0);
    c.state.set(this.state);
    c.next = this.next;
    c.left = this.left;
    return c;
  }

  private twist(): void {
    const s = this.state;
    this.left = N;
    this.next = 0;
    for (let k = 0; k < N; k++) {
      const y = (s[k] & UPPER_MASK) | (s[(k + 1) % N] & LOWER_MASK);
      s[k] = (s[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0)) >>> 0;
    }
  }
}
