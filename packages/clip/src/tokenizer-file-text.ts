// A tokenizer file's text as transformers reads it: open(path, encoding="utf-8"), which raises
// UnicodeDecodeError on invalid bytes. ModelSource.readText decodes leniently (bad bytes → U+FFFD), so
// a text holding U+FFFD is checked against its bytes: a damaged file is a ModelLoadError naming the file,
// the byte offset and the line; a file that really holds U+FFFD passes.
import { ModelLoadError, type ModelSource } from '@ssd/tensor';

/** The text of `path` in `source`, refused when the file is not valid UTF-8. */
export async function readTokenizerText(source: ModelSource, path: string): Promise<string> {
  const text = await source.readText(path);
  if (!text.includes('\ufffd')) return text;
  const file = await source.open(path);
  let bytes: Uint8Array;
  try {
    bytes = await file.read(0, await file.size());
  } finally {
    await file.close();
  }
  checkUtf8(bytes, `${source.description.replace(/\/+$/, '')}/${path}`);
  return text;
}

/** Throws a ModelLoadError naming `file`, the offset and line of the first invalid byte; else returns. */
export function checkUtf8(bytes: Uint8Array, file: string): void {
  const offset = invalidUtf8Offset(bytes);
  if (offset < 0) return;
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  const shown = Array.from(bytes.subarray(offset, offset + 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new ModelLoadError(
    `${file}: not valid UTF-8 at byte ${offset} (line ${line}: ${shown}); transformers refuses it too (UnicodeDecodeError): the file is damaged, download it again`,
  );
}

/**
 * Offset of the first byte that starts an invalid UTF-8 sequence, or -1. Invalid as for Python's and
 * the WHATWG fatal decoder: stray continuation bytes, C0/C1 and F5–FF leads, overlong forms, UTF-16
 * surrogates (ED A0–BF), code points above U+10FFFF, and a sequence cut short.
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  const n = bytes.length;
  for (let i = 0; i < n; ) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    // the second byte's range narrows after E0 (overlong), ED (surrogates), F0 (overlong), F4 (> U+10FFFF)
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      len = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k < len; k++) if ((bytes[i + k] & 0xc0) !== 0x80) return i;
    i += len;
  }
  return -1;
}
