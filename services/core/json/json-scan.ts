/**
 * One pass over a JSON text, without recursion and without building values, that finds what
 * JSON.parse accepts but the service cannot store exactly: nesting deeper than a limit (JSON.stringify
 * and Postgres recurse), a lone UTF-16 surrogate or a NUL in a string or key (Postgres jsonb refuses
 * both), and numbers a double cannot hold. Syntax errors are left to JSON.parse: on malformed text
 * the scan only promises to terminate.
 */
import { numberProblem } from './exact-number';

export type PathSegment = string | number;

export interface JsonProblem {
  path: PathSegment[];
  message: string;
  /** For a value nested too deep: where it starts and ends in the text (it was not scanned inside). */
  span?: [number, number];
}

const OBJECT = 1;
const ARRAY = 2;

/**
 * Calls `report` for each problem in document order; it returns false to stop the scan.
 * `maxDepth` counts containers from the document itself (`{}` alone is depth 1).
 */
export function scanJson(text: string, limits: { maxDepth: number; depthMessage: string }, report: (p: JsonProblem) => boolean): void {
  const { maxDepth, depthMessage } = limits;
  const kinds: number[] = [];
  const index: number[] = [];
  const keyStart: number[] = [];
  const keyEnd: number[] = [];
  let expectKey = false;
  const n = text.length;
  const strings = new StringScanner(text);

  // Built only for a problem. A key's segment is the last key read in its object.
  const path = (): PathSegment[] => kinds.map((k, d) => (k === ARRAY ? index[d]! : keyAt(text, keyStart[d]!, keyEnd[d]!)));

  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    const top = kinds.length - 1;
    if (c === 0x22) {
      // "
      const isKey = expectKey && top >= 0 && kinds[top] === OBJECT;
      const end = strings.scan(i);
      if (strings.problem !== null) {
        const ok = isKey ? report({ path: path().slice(0, -1), message: `has a key that ${strings.problem}` }) : report({ path: path(), message: strings.problem });
        if (!ok) return;
      }
      if (isKey) {
        keyStart[top] = i;
        keyEnd[top] = end;
        expectKey = false;
      }
      i = end;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      let exponent = false;
      for (; end < n; end++) {
        const d = text.charCodeAt(end);
        if ((d >= 0x30 && d <= 0x39) || d === 0x2e || d === 0x2b || d === 0x2d) continue;
        if (d === 0x65 || d === 0x45) exponent = true;
        else break;
      }
      // Up to 15 significant digits and no exponent always round-trip (DBL_DIG is 15).
      if (exponent || end - i > 15) {
        const problem = numberProblem(text.slice(i, end));
        if (problem && !report({ path: path(), message: problem })) return;
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      // { [
      if (kinds.length >= maxDepth) {
        const end = skipValue(text, i);
        if (!report({ path: path(), message: depthMessage, span: [i, end] })) return;
        i = end;
        continue;
      }
      kinds.push(c === 0x7b ? OBJECT : ARRAY);
      index.push(0);
      keyStart.push(-1);
      keyEnd.push(-1);
      expectKey = c === 0x7b;
      i++;
    } else if (c === 0x7d || c === 0x5d) {
      // } ]
      kinds.pop();
      index.pop();
      keyStart.pop();
      keyEnd.pop();
      expectKey = false;
      i++;
    } else if (c === 0x2c) {
      // ,
      if (top >= 0) {
        if (kinds[top] === ARRAY) index[top]!++;
        else expectKey = true;
      }
      i++;
    } else i++;
  }
}

const LONE_SURROGATE = 'must not contain a lone UTF-16 surrogate (\\ud800-\\udfff without its pair)';
const NUL = 'must not contain the NUL character (\\u0000), which Postgres cannot store';

/**
 * Finds the end of each string, and the first unstorable escape in it. Strings without a backslash
 * (most) cost one indexOf: the next backslash of the text is found once and reused.
 */
class StringScanner {
  problem: string | null = null;
  private nextBackslash = -1;
  private backslashFrom = -1;

  constructor(private readonly text: string) {}

  /** The index after the closing quote of the string whose opening quote is at `start`. */
  scan(start: number): number {
    const text = this.text;
    this.problem = null;
    let j = start + 1;
    for (;;) {
      const quote = text.indexOf('"', j);
      if (quote < 0) return text.length;
      const slash = this.backslashAfter(j);
      if (slash < 0 || slash > quote) return quote + 1;
      j = slash + 2;
      if (text.charCodeAt(slash + 1) !== 0x75) continue;
      // Only \u escapes can spell what cannot be stored.
      const unit = parseInt(text.slice(slash + 2, slash + 6), 16);
      j = slash + 6;
      if (this.problem !== null) continue;
      if (unit === 0) this.problem = NUL;
      else if (unit >= 0xd800 && unit <= 0xdbff) {
        const low = text.charCodeAt(j) === 0x5c && text.charCodeAt(j + 1) === 0x75 ? parseInt(text.slice(j + 2, j + 6), 16) : NaN;
        if (low >= 0xdc00 && low <= 0xdfff) j += 6;
        else this.problem = LONE_SURROGATE;
      } else if (unit >= 0xdc00 && unit <= 0xdfff) this.problem = LONE_SURROGATE;
    }
  }

  private backslashAfter(from: number): number {
    if (this.backslashFrom < 0 || (this.nextBackslash >= 0 && this.nextBackslash < from) || from < this.backslashFrom) {
      this.nextBackslash = this.text.indexOf('\\', from);
      this.backslashFrom = from;
    }
    return this.nextBackslash;
  }
}

function keyAt(text: string, start: number, end: number): string {
  if (start < 0) return '?';
  try {
    return JSON.parse(text.slice(start, end)) as string;
  } catch {
    return '?';
  }
}

/** The index after the object or array opening at `start` (strings are skipped whole). */
function skipValue(text: string, start: number): number {
  const strings = new StringScanner(text);
  let depth = 0;
  let j = start;
  while (j < text.length) {
    const c = text.charCodeAt(j);
    if (c === 0x22) {
      j = strings.scan(j);
      continue;
    }
    if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) return j + 1;
    }
    j++;
  }
  return j;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `payload.a[3]["b c"]`; long paths keep their first segments. */
export function formatPath(path: PathSegment[], maxSegments = 12): string {
  let out = '';
  path.slice(0, maxSegments).forEach((s, k) => {
    if (typeof s === 'number') out += `[${s}]`;
    else if (IDENTIFIER.test(s)) out += k === 0 ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  });
  return path.length > maxSegments ? `${out}…` : out;
}
