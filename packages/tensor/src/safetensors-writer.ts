// Writing safetensors: a header from (name, dtype, shape) entries and the data in order. In memory
// (`encodeSafetensors`) for small files such as saved latents; the streaming writer for large
// generated models lives with its tool.
import { SAFETENSORS_DTYPE_BYTES, type SafetensorsDType } from './safetensors.js';
import { shapeSize } from './dtype.js';

export interface TensorToWrite {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: ArrayBufferView;
}

/** The header bytes (length prefix + JSON, padded to 8) for entries written in the given order. */
export function safetensorsHeader(entries: readonly [string, { dtype: SafetensorsDType; shape: readonly number[] }][], metadata?: Record<string, string>): Uint8Array {
  const json: Record<string, unknown> = {};
  if (metadata) json.__metadata__ = metadata;
  let off = 0;
  for (const [name, e] of entries) {
    const bytes = shapeSize(e.shape) * SAFETENSORS_DTYPE_BYTES[e.dtype];
    json[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - ((8 + new TextEncoder().encode(text).length) % 8)) % 8);
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  return out;
}

/** A whole safetensors file in memory. */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    const want = shapeSize(t.shape) * SAFETENSORS_DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== want) throw new RangeError(`encodeSafetensors: "${name}" has ${t.data.byteLength} bytes, ${t.dtype} ${JSON.stringify(t.shape)} needs ${want}`);
  }
  const header = safetensorsHeader(entries, metadata);
  const total = header.length + entries.reduce((a, [, t]) => a + t.data.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(header, 0);
  let o = header.length;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), o);
    o += t.data.byteLength;
  }
  return out;
}
