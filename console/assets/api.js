// The Secret API of this origin, and the one credential the console holds.
// The credential lives in this module's variable only: never in storage, a
// cookie or a URL. forget() drops it; a reload loses it.

let credential = null; // {kind: "apikey" | "bearer", secret: string}

export function setCredential(kind, secret) {
  credential = { kind, secret };
}

export function forget() {
  credential = null;
}

export function signedIn() {
  return credential !== null;
}

// ApiError is a refused or failed request: its status and, for a problem
// details body, its title and field errors (name -> messages).
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.title || `HTTP ${status}`);
    this.status = status;
    this.fields = problem?.errors || {};
    this.traceId = problem?.traceId || "";
  }
}

// request sends method to path with the credential and returns the
// response of a 2xx status, or throws ApiError.
async function request(method, path, { body, accept = "application/json" } = {}) {
  if (!credential) {
    throw new ApiError(401, { title: "Not signed in" });
  }
  const headers = { Accept: accept };
  if (credential.kind === "apikey") {
    headers["X-API-KEY"] = credential.secret;
  } else {
    headers.Authorization = "Bearer " + credential.secret;
  }
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  if (resp.ok) {
    return resp;
  }
  let problem = null;
  try {
    problem = await resp.json();
  } catch {
    // not a problem details body
  }
  throw new ApiError(resp.status, problem);
}

const seg = encodeURIComponent;

export async function me() {
  return (await request("GET", "/api/me")).json();
}

export async function attributes(tenant) {
  return (await request("GET", `/api/${seg(tenant)}/secret-attributes`)).json();
}

// value fetches one value: one audited GET, asked for by a click.
export async function value(tenant, key) {
  return (await request("GET", `/api/${seg(tenant)}/secrets/${seg(key)}`, { accept: "text/plain" })).text();
}

export async function put(tenant, key, secretValue, notBefore, expiresOn) {
  const options = {};
  if (notBefore) options.notBefore = notBefore;
  if (expiresOn) options.expiresOn = expiresOn;
  const body = { value: secretValue };
  if (notBefore || expiresOn) body.options = options;
  await request("PUT", `/api/${seg(tenant)}/secrets/${seg(key)}`, { body });
}

export async function remove(tenant, key) {
  await request("DELETE", `/api/${seg(tenant)}/secrets/${seg(key)}`);
}
