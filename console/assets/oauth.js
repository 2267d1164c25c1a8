// OAuth2 authorization code with PKCE (RFC 7636, S256) as a public client.
// Only the verifier and state cross the redirect to the issuer, in
// sessionStorage, and are removed as soon as the page comes back; the
// access token is returned to the caller and never stored.

const pending = "neostore-console.pkce";

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

export function redirectURI() {
  // The page's directory (/ui/) whether it is at /ui/ or /ui/callback.
  return new URL("callback", location.origin + location.pathname.replace(/[^/]*$/, "")).href;
}

async function discover(issuer) {
  const url = issuer.replace(/\/+$/, "") + "/.well-known/openid-configuration";
  const resp = await fetch(url, { credentials: "omit", cache: "no-store" });
  if (!resp.ok) throw new Error(`The issuer's discovery document answered ${resp.status}.`);
  const meta = await resp.json();
  if (!meta.authorization_endpoint || !meta.token_endpoint) {
    throw new Error("The issuer's discovery document names no authorization or token endpoint.");
  }
  return meta;
}

// start sends the browser to the issuer's authorization endpoint.
export async function start(cfg) {
  const meta = await discover(cfg.issuer);
  const verifier = random(32);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const state = random(16);
  sessionStorage.setItem(pending, JSON.stringify({ verifier, state }));
  const u = new URL(meta.authorization_endpoint);
  u.search = new URLSearchParams({
    response_type: "code",
    client_id: cfg.clientId,
    redirect_uri: redirectURI(),
    scope: "openid Secret.Read Secret.Write",
    audience: cfg.audience,
    state,
    code_challenge: b64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  }).toString();
  location.assign(u.href);
}

// returning reports whether this page load is the issuer's redirect back.
export function returning() {
  return location.pathname.endsWith("/callback");
}

// finish exchanges the code of the redirect for an access token. It takes
// the code out of the address bar first, whatever happens next.
export async function finish(cfg) {
  const params = new URLSearchParams(location.search);
  history.replaceState(null, "", "./");
  const saved = sessionStorage.getItem(pending);
  sessionStorage.removeItem(pending);
  if (!saved) throw new Error("No sign-in was in progress in this tab.");
  const { verifier, state } = JSON.parse(saved);
  if (params.get("error")) throw new Error(`The issuer refused the sign-in: ${params.get("error")}.`);
  if (!params.get("code") || params.get("state") !== state) throw new Error("The sign-in answer does not match the request.");
  const meta = await discover(cfg.issuer);
  const resp = await fetch(meta.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: cfg.clientId,
      code: params.get("code"),
      redirect_uri: redirectURI(),
      code_verifier: verifier,
    }),
    credentials: "omit",
    cache: "no-store",
  });
  if (!resp.ok) throw new Error(`The issuer's token endpoint answered ${resp.status}.`);
  const token = await resp.json();
  if (!token.access_token) throw new Error("The issuer returned no access token.");
  return token.access_token;
}
