/**
 * Small helpers over TypeBox for the shapes TypeBox spells awkwardly: string enums as `enum` (not
 * an `anyOf` of constants, which reads badly in the OpenAPI document and in generated clients),
 * nullable values, and comma-separated lists of enum values as the task filter accepts them.
 */
import { SchemaOptions, TSchema, Type } from '@sinclair/typebox';

export interface StringEnumSchema<T extends string> {
  type: 'string';
  enum: T[];
}

/** `{"type": "string", "enum": [...]}`, typed as the union of its values. */
export function StringEnum<T extends string>(values: readonly T[], opts: SchemaOptions = {}) {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], ...opts }) as ReturnType<typeof Type.Unsafe<T>> & StringEnumSchema<T>;
}

export function Nullable<T extends TSchema>(schema: T, opts: SchemaOptions = {}) {
  return Type.Union([schema, Type.Null()], opts);
}

/**
 * A pattern for "one or more of `values`, comma-separated, blanks around each allowed": what the
 * filter's list parsing accepts (it splits on commas and trims, as String.prototype.trim, whose
 * whitespace is exactly `\s`).
 */
export function enumListPattern(values: readonly string[]): string {
  const one = `(?:${values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`;
  return `^\\s*${one}\\s*(?:,\\s*${one}\\s*)*$`;
}

/** One or more of `values`: a comma-separated string, or an array of such strings. */
export function EnumList<T extends string>(values: readonly T[], opts: SchemaOptions = {}) {
  const item = Type.String({ pattern: enumListPattern(values) });
  return Type.Unsafe<T | T[]>({
    anyOf: [item, Type.Array(item, { minItems: 1 })],
    ...opts,
    description: `${opts.description ? `${opts.description} ` : ''}One or more of ${values.join(', ')}: comma-separated, or as a list.`,
  });
}
