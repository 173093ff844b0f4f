/** RFC 9457 problem details: every error response of the API is one of these. */
export interface FieldError {
  field: string;
  message: string;
}

export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly errors: FieldError[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
  }

  body(instance?: string): Record<string, unknown> {
    const slug = this.title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
    const out: Record<string, unknown> = { type: `urn:task-scheduler:problem:${slug}`, title: this.title, status: this.status, detail: this.message };
    if (instance) out.instance = instance;
    if (this.errors.length) out.errors = this.errors;
    return out;
  }
}

export const badRequest = (detail: string, errors: FieldError[] = []) => new ProblemError(400, 'Invalid request', detail, errors);
export const notFound = (detail: string) => new ProblemError(404, 'Not found', detail);
export const conflict = (detail: string, errors: FieldError[] = []) => new ProblemError(409, 'Idempotency key conflict', detail, errors);
export const unavailable = (detail: string, retryAfterS = 1) =>
  new ProblemError(503, 'Service unavailable', detail, [], { 'Retry-After': String(retryAfterS) });
