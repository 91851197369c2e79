// CLIPTokenizer's text clean-up when ftfy is not installed (the diffusers default): transformers'
// BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text) joined with single spaces,
// reproduced with Python 3.11's semantics (Unicode 14.0 categories, str.split() whitespace, str.lower()).
// transformers: models/clip/tokenization_clip.py BasicTokenizer._clean_text, _tokenize_chinese_chars, tokenize.

import { isOtherCategory14 } from './text-normalize-table.js';

/**
 * Python's str.isspace() set, which str.split()/str.strip() use (U+001C–001F, U+0085, U+2028 and U+2029
 * included, U+FEFF not: JS \s differs both ways).
 */
const PY_WHITESPACE_RUN = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** Unicode 14.0 category Zs: BasicTokenizer._is_whitespace turns these (and \t \n \r) into " ". */
export function isSpaceSeparator(cp: number): boolean {
  return (
    cp === 0x20 || cp === 0xa0 || cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x202f || cp === 0x205f || cp === 0x3000
  );
}

/** BasicTokenizer._is_chinese_char: the CJK ideograph blocks only (not kana, not hangul). */
function isCjkIdeograph(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** Printable ASCII only: nothing to drop, no CJK, NFC is the identity, and lower() is ASCII lower-casing. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * The text BasicTokenizer hands to the CLIP regex: controls, format characters, unassigned code points,
 * lone surrogates, U+0000 and U+FFFD dropped; \t \n \r and Zs → space; spaces around CJK ideographs;
 * NFC; split on Python whitespace; each piece lower-cased as str.lower() does; joined with " ".
 */
export function cleanText(text: string): string {
  if (PRINTABLE_ASCII.test(text)) return joinPieces(text.split(' ').filter(nonEmpty), (p) => p.toLowerCase());

  let out = '';
  // for..of walks code points and yields a lone surrogate as itself, as Python iterates a str
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0x09 || cp === 0x0a || cp === 0x0d) out += ' ';
    else if (cp === 0 || cp === 0xfffd || isOtherCategory14(cp)) continue;
    else if (isSpaceSeparator(cp)) out += ' ';
    else if (isCjkIdeograph(cp)) out += ` ${ch} `;
    else out += ch;
  }
  return joinPieces(out.normalize('NFC').split(PY_WHITESPACE_RUN).filter(nonEmpty), pythonLower);
}

function nonEmpty(s: string): boolean {
  return s.length > 0;
}

function joinPieces(pieces: string[], lower: (s: string) => string): string {
  let out = '';
  for (const p of pieces) out += (out ? ' ' : '') + lower(p);
  return out;
}

const CASED = /\p{Cased}/u;
const CASE_IGNORABLE = /\p{Case_Ignorable}/u;

/**
 * Unicode 14.0 Cased / Case_Ignorable for the two code points (assigned by 14.0) whose values changed
 * in 16.0: U+0295 was Ll (cased), U+1171E was Mn (case-ignorable).
 */
function isCased(cp: number): boolean {
  if (cp === 0x0295) return true;
  if (cp === 0x1171e) return false;
  return CASED.test(String.fromCodePoint(cp));
}

function isCaseIgnorable(cp: number): boolean {
  if (cp === 0x0295) return false;
  if (cp === 0x1171e) return true;
  return CASE_IGNORABLE.test(String.fromCodePoint(cp));
}

/**
 * Python's str.lower(): full lower-case mappings (İ → i̇) plus the Final_Sigma rule for Σ. JS's
 * toLowerCase() maps every other code point the same way, one at a time, so only Σ needs its context,
 * read with Unicode 14.0 properties as CPython's handle_capital_sigma does.
 */
export function pythonLower(s: string): string {
  if (!s.includes('\u03a3')) return s.toLowerCase();
  const cps = Array.from(s, (c) => c.codePointAt(0)!);
  let out = '';
  for (let i = 0; i < cps.length; i++) {
    if (cps[i] === 0x03a3) out += isFinalSigma(cps, i) ? '\u03c2' : '\u03c3';
    else out += String.fromCodePoint(cps[i]).toLowerCase();
  }
  return out;
}

/** \p{Cased} (\p{Case_Ignorable})* Σ not followed by (\p{Case_Ignorable})* \p{Cased}. */
function isFinalSigma(cps: number[], i: number): boolean {
  let j = i - 1;
  while (j >= 0 && isCaseIgnorable(cps[j])) j--;
  if (j < 0 || !isCased(cps[j])) return false;
  let k = i + 1;
  while (k < cps.length && isCaseIgnorable(cps[k])) k++;
  return k === cps.length || !isCased(cps[k]);
}
