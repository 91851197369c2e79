// TensorScope: the one tensor-lifetime idiom of @ssd. A scope owns the GPU tensors a piece of code
// makes; `dispose()` (in a `finally`) frees whatever is still owned, on success, error and abort
// alike, across `await`s. Results leave with `keep`. Forward passes (synchronous: they only record)
// use withScopeSync and free each intermediate as soon as its last reader is recorded (`then`,
// `drop`), so the scope changes no memory peak.
import type { Tensor } from './tensor.js';

export class TensorScope {
  private readonly owned = new Set<Tensor>();

  /** Takes ownership of `t` (returned as is). */
  track<T extends Tensor>(t: T): T {
    this.owned.add(t);
    return t;
  }

  /** `f(x)`, owned by the scope; then `x` is freed (the chaining step of a forward pass). */
  then(x: Tensor, f: (x: Tensor) => Tensor): Tensor {
    const y = this.track(f(x));
    if (y !== x) this.drop(x);
    return y;
  }

  /** Frees tensors now (owned or not; undefined entries are skipped). */
  drop(...ts: (Tensor | undefined | null)[]): void {
    for (const t of ts) {
      if (!t) continue;
      this.owned.delete(t);
      t.dispose();
    }
  }

  /** Gives up ownership of `t` without freeing it (a result leaving the scope). */
  keep<T extends Tensor>(t: T): T {
    this.owned.delete(t);
    return t;
  }

  /** Whether `t` is owned by this scope. */
  owns(t: Tensor): boolean {
    return this.owned.has(t);
  }

  /** Frees every tensor still owned. Safe to call more than once. */
  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned.clear();
  }
}

/** Runs `fn` with a fresh scope and frees everything it still owns when `fn` settles. */
export async function withScope<T>(fn: (scope: TensorScope) => Promise<T> | T): Promise<T> {
  const scope = new TensorScope();
  try {
    return await fn(scope);
  } finally {
    scope.dispose();
  }
}

/** withScope for synchronous code (a forward pass, which only records work): returns `fn`'s result as is. */
export function withScopeSync<T>(fn: (scope: TensorScope) => T): T {
  const scope = new TensorScope();
  try {
    return fn(scope);
  } finally {
    scope.dispose();
  }
}
