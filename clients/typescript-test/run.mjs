// Builds neostore-secrets, starts `dev` on a free loopback port, generates a
// TypeScript client from the /openapi.json it serves (openapi-typescript),
// type-checks and compiles the test against it (tsc, strict) and runs it with
// openapi-fetch against the server. Exits non-zero when any step fails;
// always stops the server.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const build = join(here, "build");
const bin = mkdtempSync(join(tmpdir(), "neostore-ts-"));

function step(name, cmd, args, opts = {}) {
  console.log(`-- ${name}`);
  const r = spawnSync(cmd, args, { stdio: "inherit", ...opts });
  if (r.status !== 0) {
    throw new Error(`${name} failed (${r.error ?? `exit ${r.status}`})`);
  }
}

// startDev runs `dev` and resolves with its base URL and API key once it has
// printed them: the readiness signal is the banner, never a sleep.
function startDev(exe) {
  const child = spawn(exe, ["dev", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
  let logs = "";
  child.stderr.on("data", (chunk) => (logs += chunk));
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("dev printed no API key within 30s")), 30_000);
    let base, key, keyNext = false;
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`dev exited with ${code} before it was ready`));
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = line.match(/^neostore-secrets dev server: (http:\/\/\S+)/);
      if (m) base = m[1];
      if (keyNext && line.trim() !== "") {
        key = line.trim();
        keyNext = false;
      }
      if (line.startsWith("API key for tenant")) keyNext = true;
      if (base && key) {
        clearTimeout(timer);
        resolve({ base, key });
      }
    });
  });
  const stop = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
      child.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill("SIGTERM");
    });
  return { ready, stop, logs: () => logs };
}

let dev;
let failed = false;
try {
  const exe = join(bin, "neostore-secrets");
  step("go build", "go", ["build", "-o", exe, "./cmd/neostore-secrets"], { cwd: repo });
  dev = startDev(exe);
  const { base, key } = await dev.ready;
  console.log(`-- dev server at ${base}`);

  const resp = await fetch(`${base}/openapi.json`);
  if (resp.status !== 200) throw new Error(`GET /openapi.json = ${resp.status}`);
  rmSync(build, { recursive: true, force: true });
  mkdirSync(build, { recursive: true });
  writeFileSync(join(build, "openapi.json"), await resp.text());

  const npx = join(here, "node_modules", ".bin");
  step("openapi-typescript", join(npx, "openapi-typescript"), [join(build, "openapi.json"), "-o", join(build, "api.d.ts")]);
  // One pass: strict type-checking, and with noEmitOnError nothing to run
  // when the test does not type-check against the generated client.
  step("tsc (strict)", join(npx, "tsc"), ["-p", here]);
  step("node --test", process.execPath, ["--test", join(build, "js", "client.test.js")], {
    env: { ...process.env, NEOSTORE_TEST_ADDR: base, NEOSTORE_TEST_API_KEY: key },
  });
} catch (err) {
  failed = true;
  console.error(`typescript client test: ${err.message}`);
  if (dev) console.error(`server log:\n${dev.logs()}`);
} finally {
  if (dev) await dev.stop();
  rmSync(bin, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
