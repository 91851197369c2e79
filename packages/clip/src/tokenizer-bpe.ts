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

/** Words longer than this are not memoised: a 100 KB pathological word must not stay in the cache. */
const MAX_CACHED_WORD = 256;

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
    if (word.length > MAX_CACHED_WORD) return symbols;
    if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
    this.cache.set(word, symbols);
    return symbols;
  }

  /**
   * transformers' CLIPTokenizer.bpe, in O(n log n) instead of its O(n²) per merge: each round takes the
   * lowest-ranked adjacent pair and merges every occurrence of it, left to right, as bpe() does. The
   * symbols are a linked list; candidate pairs wait in a heap ordered by (rank, position) and are
   * checked when popped (a merge may have consumed them). Pairs a merge creates join the heap only
   * after the round, so that, as in bpe(), a round merges exactly the occurrences present at its start.
   */
  private merge(word: string): string[] {
    // byte-level symbols are all in the BMP, so UTF-16 units are characters here
    const n = word.length;
    const sym = word.split('');
    sym[n - 1] += WORD_END;
    if (n === 1) return sym;
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const alive = new Uint8Array(n).fill(1);
    const heap = new PairHeap();
    const candidate = (i: number, into: { push(p: Pair): unknown }) => {
      const j = next[i];
      const rank = j < 0 ? undefined : this.ranks.get(`${sym[i]} ${sym[j]}`);
      if (rank !== undefined) into.push({ rank, pos: i, left: sym[i], right: sym[j] });
    };
    const current = (p: Pair) => alive[p.pos] === 1 && next[p.pos] >= 0 && sym[p.pos] === p.left && sym[next[p.pos]] === p.right;
    for (let i = 0; i < n - 1; i++) candidate(i, heap);
    let count = n;
    while (count > 1) {
      let top = heap.pop();
      while (top && !current(top)) top = heap.pop();
      if (!top) break;
      const rank = top.rank;
      const created: Pair[] = [];
      for (let p: Pair | undefined = top; p; p = heap.peek()?.rank === rank ? heap.pop() : undefined) {
        if (!current(p)) continue;
        const i = p.pos;
        const j = next[i];
        sym[i] += sym[j];
        alive[j] = 0;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        count--;
        if (prev[i] >= 0) candidate(prev[i], created);
        candidate(i, created);
      }
      for (const c of created) heap.push(c);
    }
    const out: string[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(sym[i]);
    return out;
  }
}

interface Pair {
  rank: number;
  /** Index of the left symbol (indices keep left-to-right order: a merge keeps the left one). */
  pos: number;
  left: string;
  right: string;
}

/** A binary min-heap of pairs by (rank, pos). */
class PairHeap {
  private readonly items: Pair[] = [];

  private static less(a: Pair, b: Pair): boolean {
    return a.rank < b.rank || (a.rank === b.rank && a.pos < b.pos);
  }

  peek(): Pair | undefined {
    return this.items[0];
  }

  push(p: Pair): void {
    const a = this.items;
    a.push(p);
    for (let i = a.length - 1; i > 0; ) {
      const up = (i - 1) >> 1;
      if (!PairHeap.less(a[i], a[up])) break;
      [a[i], a[up]] = [a[up], a[i]];
      i = up;
    }
  }

  pop(): Pair | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && PairHeap.less(a[l], a[m])) m = l;
        if (r < a.length && PairHeap.less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
