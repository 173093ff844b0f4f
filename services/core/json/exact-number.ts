/**
 * Whether a JSON number token survives the trip through a JavaScript number unchanged. Payloads are
 * parsed into JS values (handlers receive them so), so a token a double cannot hold (1e400, or an
 * integer above 2^53) would otherwise be stored as null or rounded without a word.
 */

/** null when `token` is held exactly, else why not. */
export function numberProblem(token: string): string | null {
  // Up to 15 significant digits and a small exponent always round-trip (DBL_DIG is 15).
  if (token.length <= 15 && !/[eE]/.test(token)) return null;
  const value = Number(token);
  if (!Number.isFinite(value)) return 'is a number out of range (a 64-bit float ends near 1.8e308); send it as a string';
  if (!sameDecimal(token, String(value))) {
    return 'is a number a 64-bit float cannot hold exactly (integers are exact up to 2^53); send it as a string';
  }
  return null;
}

interface Decimal {
  negative: boolean;
  digits: string;
  exponent: number;
}

/** sign · digits · 10^exponent, with no leading or trailing zeros in digits ('' for zero). */
function decimalOf(text: string): Decimal {
  let s = text;
  const negative = s.startsWith('-');
  if (negative || s.startsWith('+')) s = s.slice(1);
  let exponent = 0;
  const e = s.search(/[eE]/);
  if (e >= 0) {
    exponent = Number(s.slice(e + 1));
    s = s.slice(0, e);
  }
  const dot = s.indexOf('.');
  if (dot >= 0) {
    exponent -= s.length - dot - 1;
    s = s.slice(0, dot) + s.slice(dot + 1);
  }
  // Loops, not /^0+/ and /0+$/: the second, tried from every zero of a run that does not end the
  // digits, costs that run's length squared.
  let first = 0;
  while (first < s.length && s.charCodeAt(first) === 0x30) first++;
  let end = s.length;
  while (end > first && s.charCodeAt(end - 1) === 0x30) end--;
  exponent += s.length - end;
  return { negative, digits: s.slice(first, end), exponent };
}

function sameDecimal(a: string, b: string): boolean {
  const x = decimalOf(a);
  const y = decimalOf(b);
  if (x.digits === '' || y.digits === '') return x.digits === y.digits; // -0 is 0
  return x.negative === y.negative && x.digits === y.digits && x.exponent === y.exponent;
}
