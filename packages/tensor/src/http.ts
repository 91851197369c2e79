// fetch with the two timeouts a model download needs — no response headers within `connectTimeoutMs`,
// no body bytes for `idleTimeoutMs` — and bodies read with a byte cap, so a server that accepts and
// never answers, stalls mid-file or streams without end is a clear error instead of a hang or an
// unbounded allocation. Used by UrlSource and HttpRangeSource.
import { AbortError, ModelLoadError } from './errors.js';

export interface HttpTimeouts {
  /** Milliseconds to wait for a response's status and headers (default 30 000). */
  connectTimeoutMs?: number;
  /** Milliseconds to wait for the next bytes of a body (default 60 000). */
  idleTimeoutMs?: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** A timeout or a dropped connection: worth a retry (the server may answer next time). */
export class TransientHttpError extends ModelLoadError {}

/** A response whose body is read with `readBody` (capped) or dropped with `cancel`. */
export interface TimedResponse {
  res: Response;
  /** The body; past `maxBytes` the download stops with `tooLarge()` (default: a ModelLoadError saying so). */
  readBody(maxBytes: number, what: string, tooLarge?: () => Error): Promise<Uint8Array>;
  cancel(): Promise<void>;
}

function timeoutOf(v: number | undefined, dflt: number, name: string): number {
  const ms = v ?? dflt;
  if (!(ms > 0)) throw new ModelLoadError(`${name} must be a positive number of milliseconds, got ${v}`);
  return ms;
}

/**
 * fetch(url, init) that rejects with TransientHttpError when no response arrives within the connect
 * timeout, and whose body reads reject when no bytes arrive for the idle timeout. The caller's
 * `signal` still aborts everything (AbortError).
 */
export async function timedFetch(
  fetchImpl: typeof fetch,
  url: string,
  init: RequestInit,
  timeouts: HttpTimeouts,
  signal?: AbortSignal,
): Promise<TimedResponse> {
  const connectMs = timeoutOf(timeouts.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, 'connectTimeoutMs');
  const idleMs = timeoutOf(timeouts.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, 'idleTimeoutMs');
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const unlink = () => signal?.removeEventListener('abort', onAbort);
  const aborted = () => (signal?.aborted ? new AbortError(`downloading ${url} was aborted`, { cause: signal.reason }) : null);

  // race as well as abort: an injected fetch may ignore the signal
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new TransientHttpError(`${url}: no response within ${connectMs / 1000} s (connectTimeoutMs; the server accepted the connection but did not answer)`);
      reject(e);
      ac.abort(e);
    }, connectMs);
  });
  let res: Response;
  try {
    res = await Promise.race([fetchImpl(url, { ...init, signal: ac.signal }), timedOut]);
  } catch (e) {
    unlink();
    throw aborted() ?? e;
  } finally {
    clearTimeout(timer);
  }

  const cancel = async () => {
    unlink();
    await res.body?.cancel().catch(() => {});
  };

  const readBody = async (maxBytes: number, what: string, tooLarge?: () => Error): Promise<Uint8Array> => {
    const reader = res.body?.getReader();
    if (!reader) {
      unlink();
      return new Uint8Array(0);
    }
    const parts: Uint8Array[] = [];
    let total = 0;
    try {
      for (;;) {
        let idle: ReturnType<typeof setTimeout> | undefined;
        const stalled = new Promise<never>((_, reject) => {
          idle = setTimeout(() => {
            const e = new TransientHttpError(`${url}: no data for ${idleMs / 1000} s while reading ${what} (idleTimeoutMs; the connection stalled)`);
            reject(e);
            ac.abort(e);
          }, idleMs);
        });
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await Promise.race([reader.read(), stalled]);
        } finally {
          clearTimeout(idle);
        }
        if (chunk.done) break;
        total += chunk.value.byteLength;
        if (total > maxBytes) {
          throw tooLarge?.() ?? new ModelLoadError(`${url}: ${what} is larger than the ${maxBytes.toLocaleString('en-US')} bytes asked for; refusing to read more`);
        }
        parts.push(chunk.value);
      }
    } catch (e) {
      await reader.cancel().catch(() => {});
      const a = aborted();
      if (a) throw a;
      if (e instanceof ModelLoadError || e === tooLarge) throw e;
      throw new TransientHttpError(`${url}: the connection dropped while reading ${what} (${(e as Error).message})`, { cause: e });
    } finally {
      unlink();
    }
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.byteLength;
    }
    return out;
  };

  return { res, readBody, cancel };
}
