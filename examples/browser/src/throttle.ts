// Progress messages from the worker at most every `ms` (a download reports every chunk), never
// dropping the final one.

export function throttled<T extends unknown[]>(fn: (...a: T) => void, ms: number, isFinal: (...a: T) => boolean): (...a: T) => void {
  let last = 0;
  return (...a: T) => {
    const now = performance.now();
    if (isFinal(...a) || now - last >= ms) {
      last = now;
      fn(...a);
    }
  };
}
