import swagger from '@fastify/swagger';
import type { FastifyPluginAsync } from 'fastify';
import fastifyPlugin from 'fastify-plugin';

/**
 * openapiRoute describes the HTTP API as an OpenAPI 3.0 document generated from the route
 * schemas, and serves it at `GET /openapi.json`. It documents only the routes registered
 * after it, so it is registered before every route; it is not encapsulated (fastify-plugin)
 * so that it sees the routes of every plugin. The document is built once, on the first
 * request, when every route is known. A route whose schema says `hide: true` (the dashboard's
 * static files) is left out, and so is `HEAD`, which answers as `GET` without a body.
 */
export const openapiRoute: FastifyPluginAsync = fastifyPlugin(
  async (app) => {
    // Awaited: its hook must be in place before the route below is added.
    await app.register(swagger, {
      openapi: {
        info: {
          title: 'order-pipeline',
          description:
            'Processes an order by running its steps (payment, vendor, courier) concurrently: ' +
            'the first failure or the deadline cancels the rest and undoes what ran. Every ' +
            'error answer has the same body, `{ "status": "error", "error": { "kind", "message" } }`, ' +
            'and its status follows from its kind alone.',
          // The version of the HTTP contract, not of the package.
          version: '1',
        },
        components: {
          securitySchemes: {
            operatorToken: {
              type: 'http',
              scheme: 'bearer',
              description: 'The operator token (`ADMIN_TOKEN`) of the operator actions.',
            },
          },
        },
      },
    });
    let document: string | undefined;
    app.get(
      '/openapi.json',
      {
        schema: {
          summary: 'This OpenAPI document',
          description: 'The OpenAPI 3.0 document of every route, generated from its schemas.',
          response: {
            200: {
              description: 'The OpenAPI document.',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
          },
        },
      },
      (_request, reply) => {
        document ??= JSON.stringify(app.swagger());
        // A string with a JSON content type is sent as it is, not serialized again.
        return reply.type('application/json; charset=utf-8').send(document);
      },
    );
  },
  { name: 'openapi-route', fastify: '5.x' },
);
