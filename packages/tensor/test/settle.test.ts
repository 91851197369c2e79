import { describe, expect, it } from 'vitest';
import { allInOrder } from '../src/index.js';

const later = <T>(ms: number, f: () => T) => new Promise<T>((resolve, reject) => setTimeout(() => { try { resolve(f()); } catch (e) { reject(e); } }, ms));

describe('allInOrder', () => {
  it('returns the values in argument order', async () => {
    expect(await allInOrder<[number, string]>([later(20, () => 1), later(1, () => 'b')])).toEqual([1, 'b']);
  });

  it('throws the first rejection in argument order, not the first in time', async () => {
    const err = await allInOrder([
      later(5, () => 0),
      later(30, () => { throw new Error('first file'); }),
      later(1, () => { throw new Error('second file'); }),
    ]).catch((e: unknown) => e);
    expect((err as Error).message).toBe('first file');
  });

  it('waits for every promise before throwing', async () => {
    let finished = false;
    const err = await allInOrder([
      Promise.reject(new Error('now')),
      later(20, () => { finished = true; }),
    ]).catch((e: unknown) => e);
    expect((err as Error).message).toBe('now');
    expect(finished).toBe(true);
  });
});
