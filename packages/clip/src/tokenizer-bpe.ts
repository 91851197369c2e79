// CLIP's pre-tokenizer regex, GPT-2 byte-level mapping and byte-pair merging with `</w>` word ends.
// transformers: models/clip/tokenization_clip.py (bytes_to_unicode, CLIPTokenizer.pat, bpe, _tokenize).

/**
 * `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+` compiled
 * by Python's `regex` module with IGNORECASE, rewritten for JS without the `i` flag (the text is already
 * lower-cased). What IGNORECASE still adds there: ſ (U+017F) matches "s", and U+0345 (combining
 * ypogegrammeni, case-equivalent to the letter ι) matches neither the letter class nor its negation, so
 * `regex` skips it like whitespace. `\s` never sees anything but " " after the clean-up.
 */
const CLIP_PATTERN = /<\|[sſ]tartoftext\|>|<\|endoftext\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}\u0345]+/gu;

/** Byte → symbol: printable Latin-1 bytes map to themselves, the other 68 to U+0100… in byte order. */
const BYTE_SYMBOLS: readonly string[] = (() => {
  const table = new Array<string>(256);
  let next = 0x100;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : next++);
  }
  return table;
})();

const SYMBOL_BYTES: ReadonlyMap<string, number> = new Map(BYTE_SYMBOLS.map((s, b) => [s, b]));

const WORD_END = '</w>';

/** The cache is bounded so that a long-lived page cannot grow it without limit; hits are identical either way. */
const MAX_CACHE_ENTRIES = 50_000;

const utf8 = new TextEncoder();

/** Splits cleaned text into the regex's matches, each written in the byte-level alphabet. */
export function preTokenize(cleaned: string): string[] {
  const out: string[] = [];
  for (const m of cleaned.matchAll(CLIP_PATTERN)) out.push(toByteSymbols(m[0]));
  return out;
}

function toByteSymbols(word: string): string {
  // ASCII printable words are their own byte symbols (the common case)
  if (/^[\x21-\x7e]*$/.test(word)) return word;
  let s = '';
  for (const b of utf8.encode(word)) s += BYTE_SYMBOLS[b];
  return s;
}

/** Bytes back from byte-level symbols (characters outside the alphabet are skipped). */
export function fromByteSymbols(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const b = SYMBOL_BYTES.get(ch);
    if (b !== undefined) out.push(b);
  }
  return Uint8Array.from(out);
}

/** Byte-pair merging over one pre-token, lowest merge rank first, memoised. */
export class BytePairEncoder {
  private readonly cache = new Map<string, readonly string[]>();

  /** `ranks`: "left right" → merge priority (lower merges first). */
  constructor(private readonly ranks: ReadonlyMap<string, number>) {
    // CLIPTokenizer seeds its cache so that the regex's special-token matches stay whole, without </w>
    for (const t of ['<|startoftext|>', '<|endoftext|>']) this.cache.set(t, [t]);
  }

  /** The BPE symbols of one byte-level word; the last one carries `</w>`. */
  encode(word: string): readonly string[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const symbols = this.merge(word);
    if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
    this.cache.set(word, symbols);
    return symbols;
  }

  private merge(word: string): string[] {
    // byte-level symbols are all in the BMP, so UTF-16 units are characters here
    let symbols = word.split('');
    symbols[symbols.length - 1] += WORD_END;
    while (symbols.length > 1) {
      let best = Infinity;
      let left = '';
      let right = '';
      for (let i = 0; i + 1 < symbols.length; i++) {
        const r = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          left = symbols[i];
          right = symbols[i + 1];
        }
      }
      if (best === Infinity) break;
      // merge every occurrence of the pair, left to right, as CLIPTokenizer.bpe does
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === left && symbols[i + 1] === right) {
          merged.push(left + right);
          i++;
        } else merged.push(symbols[i]);
      }
      symbols = merged;
    }
    return symbols;
  }
}
