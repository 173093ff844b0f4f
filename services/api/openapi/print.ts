/** `npm run -s openapi`: prints the OpenAPI document (as GET /openapi.json serves it with default settings). */
import { buildOpenApiDocument } from './document';

process.stdout.write(`${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`);
