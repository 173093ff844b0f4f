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
  /** Where the problem is; built when read (keys are decoded then), so a caller that skips a problem pays nothing for it. */
  readonly path: PathSegment[];
  /** The first `n` segments of `path`, without building the rest. */
  pathHead(n: number): PathSegment[];
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

  // The scan moves on after report() returns: a problem keeps a copy of where it was (three numbers
  // a level); its path is decoded from that only as deep as it is read.
  const problem = (message: string, depth = kinds.length, span?: [number, number]): JsonProblem => {
    const at = new Array<number>(depth * 3);
    for (let d = 0; d < depth; d++) {
      const inArray = kinds[d] === ARRAY;
      at[d * 3] = kinds[d]!;
      at[d * 3 + 1] = inArray ? index[d]! : keyStart[d]!;
      at[d * 3 + 2] = inArray ? 0 : keyEnd[d]!;
    }
    return new ScanProblem(text, at, depth, message, span);
  };

  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    const top = kinds.length - 1;
    if (c === 0x22) {
      // "
      const isKey = expectKey && top >= 0 && kinds[top] === OBJECT;
      const end = strings.scan(i);
      if (strings.problem !== null) {
        const ok = isKey ? report(problem(`has a key that ${strings.problem}`, top)) : report(problem(strings.problem));
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
        const inexact = numberProblem(text.slice(i, end));
        if (inexact && !report(problem(inexact))) return;
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      // { [
      if (kinds.length >= maxDepth) {
        const end = skipValue(text, i);
        if (!report(problem(depthMessage, kinds.length, [i, end]))) return;
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

/** A problem found by scanJson; `at` holds three numbers a level: ARRAY, its index, 0; or OBJECT, its last key's start and end. */
class ScanProblem implements JsonProblem {
  private built: PathSegment[] | null = null;

  constructor(
    private readonly text: string,
    private readonly at: number[],
    private readonly depth: number,
    readonly message: string,
    readonly span?: [number, number],
  ) {}

  get path(): PathSegment[] {
    return (this.built ??= this.pathHead(this.depth));
  }

  pathHead(n: number): PathSegment[] {
    if (this.built) return this.built.slice(0, n);
    const out: PathSegment[] = [];
    for (let d = 0; d < Math.min(n, this.depth); d++) {
      const a = this.at[d * 3 + 1]!;
      out.push(this.at[d * 3] === ARRAY ? a : keyAt(this.text, a, this.at[d * 3 + 2]!));
    }
    return out;
  }
}

const LONE_SURROGATE = 'must not contain a lone UTF-16 surrogate (\\ud800-\\udfff without its pair)';
const NUL = 'must not contain the NUL character (\\u0000), which Postgres cannot store';

/**
 * Finds the end of each string, and the first unstorable escape in it. Strings without a backslash
 * (most) cost one indexOf. The next quote and the next backslash of the text are each found once and
 * reused, so the whole text is searched for each at most once: searching again for the quote after
 * every escape would make a string of many escapes cost its length squared.
 */
class StringScanner {
  problem: string | null = null;
  private readonly quotes = new NextOf('"');
  private readonly backslashes = new NextOf('\\');

  constructor(private readonly text: string) {}

  /** The index after the closing quote of the string whose opening quote is at `start`. */
  scan(start: number): number {
    const text = this.text;
    this.problem = null;
    let j = start + 1;
    for (;;) {
      const quote = this.quotes.after(text, j);
      if (quote < 0) return text.length;
      const slash = this.backslashes.after(text, j);
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
}

/** The next occurrence of one character at or after a position, searched again only once passed. */
class NextOf {
  private next = -1;
  private from = -1;

  constructor(private readonly char: string) {}

  after(text: string, from: number): number {
    if (this.from < 0 || from < this.from || (this.next >= 0 && this.next < from)) {
      this.next = text.indexOf(this.char, from);
      this.from = from;
    }
    return this.next;
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
