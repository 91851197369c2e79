// Python-written JSON (NaN, Infinity, -Infinity outside strings) parses; strings are untouched.
import { expect, it } from 'vitest';
import { parseJsonLenient } from '@ssd/tensor';
it('lenient', () => {
  expect(parseJsonLenient('{"a": -Infinity, "b": [NaN, Infinity], "c": "NaN \\" -Infinity"}')).toEqual({ a: -Infinity, b: [NaN, Infinity], c: 'NaN " -Infinity' });
  expect(() => parseJsonLenient('{"a": }')).toThrow();
});
