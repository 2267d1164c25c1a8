// The four operations of the Secret API through a client generated from the
// served /openapi.json: openapi-typescript's types, openapi-fetch's calls.
// run.mjs generates build/api.d.ts and passes the server's address and an
// API key of tenant demo in the environment.
import assert from "node:assert/strict";
import { test } from "node:test";
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./build/api.js";

const baseUrl = process.env["NEOSTORE_TEST_ADDR"];
const apiKey = process.env["NEOSTORE_TEST_API_KEY"];
if (!baseUrl || !apiKey) {
  throw new Error("NEOSTORE_TEST_ADDR and NEOSTORE_TEST_API_KEY must be set (run.mjs sets them)");
}

const client = createClient<paths>({ baseUrl, headers: { "X-API-KEY": apiKey } });
const tenantId = "demo";
const key = "ts-client-db-password";
const value = 'p@ss "wörd"\n';

// The generated names are the document's operationIds and schemas.
type PutBody = operations["putSecret"]["requestBody"]["content"]["application/json"];
type Problem = components["schemas"]["ProblemDetails"];
const body: PutBody = { value, options: { expiresOn: "2099-01-01T00:00:00Z" } };

// The PUT body is required: leaving it out does not compile.
function putWithoutBody() {
  // @ts-expect-error body is required by the document
  return client.PUT("/api/{tenantId}/secrets/{key}", { params: { path: { tenantId, key } } });
}
void putWithoutBody;

test("putSecret stores a value", async () => {
  const { response, error } = await client.PUT("/api/{tenantId}/secrets/{key}", {
    params: { path: { tenantId, key } },
    body,
  });
  assert.equal(error, undefined);
  assert.equal(response.status, 204);
});

test("getSecret returns it as JSON and as text/plain", async () => {
  const asJSON = await client.GET("/api/{tenantId}/secrets/{key}", {
    params: { path: { tenantId, key } },
    headers: { Accept: "application/json" },
  });
  assert.equal(asJSON.response.status, 200);
  const got: string | undefined = asJSON.data;
  assert.equal(got, value);

  const asText = await client.GET("/api/{tenantId}/secrets/{key}", {
    params: { path: { tenantId, key } },
    headers: { Accept: "text/plain" },
    parseAs: "text",
  });
  assert.equal(asText.response.status, 200);
  assert.match(asText.response.headers.get("Content-Type") ?? "", /^text\/plain/);
  assert.equal(asText.data, value);
});

test("listSecretKeys lists its key", async () => {
  const { data, response } = await client.GET("/api/{tenantId}/secrets", { params: { path: { tenantId } } });
  assert.equal(response.status, 200);
  const keys: string[] = data ?? [];
  assert.ok(keys.includes(key), `keys ${JSON.stringify(keys)} lack ${key}`);
});

test("deleteSecret removes it; getSecret then answers a 404 problem", async () => {
  const del = await client.DELETE("/api/{tenantId}/secrets/{key}", { params: { path: { tenantId, key } } });
  assert.equal(del.response.status, 204);

  const { data, error, response } = await client.GET("/api/{tenantId}/secrets/{key}", {
    params: { path: { tenantId, key } },
  });
  assert.equal(data, undefined);
  assert.equal(response.status, 404);
  assert.equal(response.headers.get("Content-Type"), "application/problem+json; charset=utf-8");
  const problem: Problem | undefined = error;
  assert.equal(problem?.status, 404);
  assert.equal(problem?.title, "Not Found");
});

test("a refused credential gets the documented 401 problem", async () => {
  const stranger = createClient<paths>({ baseUrl, headers: { "X-API-KEY": "nsk_not_a_key" } });
  const { error, response } = await stranger.GET("/api/{tenantId}/secrets", { params: { path: { tenantId } } });
  assert.equal(response.status, 401);
  assert.equal(error?.status, 401);
});
