/**
 * Renders the generated Helm templates the way `helm template` would, for the subset of the
 * template language cdk8s/helm.ts emits: `{{ .Values.a.b }}`, `{{ .Release.Namespace }}`, the
 * pipes `quote`, `lower` and `replace "x" "y"`, and a whole-file `{{- if eq .Values.a "v" }} … {{- end }}`, and raw strings {{ `{{` }}.
 * Anything else fails, so the generator cannot drift into syntax this check does not cover.
 */
import { parseAllDocuments } from 'yaml';

export interface RenderContext {
  Values: Record<string, any>;
  Release: { Namespace: string };
}

function lookup(ctx: RenderContext, ref: string): unknown {
  const parts = ref.replace(/^\./, '').split('.');
  let v: any = ctx;
  for (const p of parts) {
    if (v === undefined || v === null || !(p in v)) throw new Error(`template refers to missing ${ref}`);
    v = v[p];
  }
  return v;
}

function evaluate(expr: string, ctx: RenderContext): string {
  const raw = /^`([^`]*)`$/.exec(expr);
  if (raw) return raw[1]!;
  const [head, ...pipes] = expr.split('|').map((s) => s.trim());
  let v: unknown = lookup(ctx, head!);
  for (const pipe of pipes) {
    const replace = /^replace "([^"]*)" "([^"]*)"$/.exec(pipe);
    if (pipe === 'quote') v = JSON.stringify(String(v));
    else if (pipe === 'lower') v = String(v).toLowerCase();
    else if (replace) v = String(v).split(replace[1]!).join(replace[2]!);
    else throw new Error(`unsupported pipe: ${pipe}`);
  }
  return String(v);
}

export function renderTemplate(text: string, ctx: RenderContext): string {
  const cond = /\n?\{\{- if eq (\.[A-Za-z.]+) "([^"]*)" \}\}\n([\s\S]*?)\n?\{\{- end \}\}\n?/g;
  let out = text.replace(cond, (_m, ref: string, want: string, body: string) => (String(lookup(ctx, ref)) === want ? `\n${body}\n` : '\n'));
  out = out.replace(/\{\{ (`[^`]*`|[^{}`]+?) \}\}/g, (_m, expr: string) => evaluate(expr, ctx));
  // Rendered literals may contain braces; what matters is that no action was left unrendered.
  const unknown = text.replace(/\{\{ (`[^`]*`|[^{}`]+?) \}\}/g, '').replace(/\{\{- (if eq [^}]+|end) \}\}/g, '');
  const at = unknown.indexOf('{{');
  if (at >= 0) throw new Error(`template syntax this renderer does not know: ${unknown.slice(Math.max(0, at - 100), at + 100)}`);
  return out;
}

/** The objects of a rendered template file (comment-only files render to none). */
export function renderObjects(text: string, ctx: RenderContext): Record<string, any>[] {
  return parseAllDocuments(renderTemplate(text, ctx))
    .map((d) => d.toJS())
    .filter((o) => o !== null && o !== undefined);
}
