import { z } from 'zod';
import { sendSchema } from './messages.js';

const problemSchema = {
  type: 'object',
  description: 'RFC 9457 problem details (application/problem+json).',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    requestId: { type: 'string' },
  },
  required: ['type', 'title', 'status'],
};

const recipientStatus = {
  type: 'object',
  properties: {
    address: { type: 'string' },
    status: { enum: ['queued', 'refused'] },
    code: { type: 'integer', description: 'The SMTP reply SMTP submission would have given.' },
    enhanced: { type: 'string' },
    reason: { type: 'string' },
  },
  required: ['address', 'status'],
};

const problems = (...codes: number[]): Record<string, unknown> =>
  Object.fromEntries(
    codes.map((c) => [
      String(c),
      {
        description: 'Problem',
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      },
    ]),
  );

/** The OpenAPI 3.1 document, its request bodies generated from the zod schemas that validate them. */
export function openApiDocument(version: string): Record<string, unknown> {
  const { $schema: _drop, ...send } = z.toJSONSchema(sendSchema, { io: 'input', unrepresentable: 'any' });
  return {
    openapi: '3.1.0',
    info: { title: 'Petrel HTTP API', version },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API key: petrel key add.' },
      },
      schemas: { Problem: problemSchema, SendRequest: send, RecipientStatus: recipientStatus },
    },
    paths: {
      '/messages': {
        post: {
          summary:
            'Queue a message (composed from JSON, or raw with its envelope); 202 after the spool commit.',
          description:
            'Needs the send scope. The same checks as SMTP submission apply. At most 1 000 recipients.',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              description:
                'A retry with the same key and body is answered as the first call was, without sending again (kept 24 h); another body with the key is a 422, a call still under way a 409.',
              schema: { type: 'string', minLength: 1, maxLength: 255 },
            },
          ],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/SendRequest' } } },
          },
          responses: {
            '202': {
              description: 'Queued',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      id: { type: 'string' },
                      ids: { type: 'array', items: { type: 'string' } },
                      recipients: { type: 'array', items: { $ref: '#/components/schemas/RecipientStatus' } },
                    },
                    required: ['id', 'ids', 'recipients'],
                  },
                },
              },
            },
            ...problems(400, 401, 403, 409, 413, 415, 422, 429, 503),
          },
        },
      },
      '/messages/{id}': {
        get: {
          summary: "A message of the key's account: envelope, recipients and delivery log (no body).",
          description: 'Needs the read scope.',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': {
              description: 'The message',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
            ...problems(401, 403, 404),
          },
        },
      },
    },
  };
}
